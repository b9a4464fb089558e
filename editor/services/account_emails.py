"""Emails about a person's account: out of credits, their data export is ready. Sent by Celery tasks."""
from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from editor.services.credits import credits_take_empty_notice

log = logging.getLogger(__name__)


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def send_credits_empty(*, user_id: int) -> bool:
    """The "you are out of credits" email, once per time the balance reaches zero, unless turned off."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email or not credits_take_empty_notice(user_id=user_id):
        return False
    context = {
        "credits_url": _absolute(reverse("editor:credits")),
        "profile_url": _absolute(reverse("editor:profile")),
    }
    send_mail(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}You are out of credits",
        message=render_to_string("editor/email/credits_empty.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )
    log.info("sent the out-of-credits email to user %s", user_id)
    return True
