"""Signal receivers. Kept thin: they call services."""
from __future__ import annotations

from typing import Any

from allauth.account.adapter import get_adapter
from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed, user_signed_up
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_migrate, post_save
from django.dispatch import receiver
from django.http import HttpRequest

from editor.dashboard.services import signup_record
from editor.services.accounts import email_address_mark_verified
from editor.services.credits import credit_account_ensure, credits_grant_starter
from editor.services.site import site_sync_from_settings


@receiver(post_save, sender=get_user_model(), dispatch_uid="editor_create_credit_account")
def create_credit_account(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    # Every new account (sign-up form, admin, createsuperuser) gets its balance row, at zero.
    if created and not raw:
        credit_account_ensure(user=instance)
        if instance.is_superuser and instance.email:
            # `createsuperuser` (or a superuser adding one) is someone at the console vouching for the address:
            # without this the operator must dig the confirmation mail out of the console before signing in.
            email_address_mark_verified(user=instance, email=instance.email)


@receiver(email_confirmed, dispatch_uid="editor_grant_starter_credits")
def grant_starter_credits(sender: Any, request: HttpRequest | None, email_address: EmailAddress,
                          **kwargs: Any) -> None:
    # The welcome credits wait for a confirmed address: an account made with an address nobody reads gets
    # nothing to farm. Once per account, whatever address it confirms.
    credits_grant_starter(user=email_address.user, amount=settings.STARTER_CREDITS)


@receiver(user_signed_up, dispatch_uid="editor_record_signup")
def record_signup(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    # The client address as allauth's rate limits see it (behind the proxy: the address the proxy saw).
    signup_record(user=user, ip=get_adapter().get_client_ip(request))
    if settings.ACCOUNT_EMAIL_VERIFICATION == "none":
        credits_grant_starter(user=user, amount=settings.STARTER_CREDITS)  # no confirmation will ever come


@receiver(post_migrate, dispatch_uid="editor_site_from_settings")
def site_from_settings(sender: Any, using: str = "default", **kwargs: Any) -> None:
    # Once per migrate (and flush), after django.contrib.sites made its default row: editor comes later in
    # INSTALLED_APPS, so its post_migrate runs after the sites app's.
    if getattr(sender, "name", "") == "editor":
        site_sync_from_settings(using=using)
