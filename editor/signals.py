"""Signal receivers. Kept thin: they call services."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from editor.services.credits import credits_grant_starter


@receiver(post_save, sender=get_user_model(), dispatch_uid="editor_grant_starter_credits")
def grant_starter_credits(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    # Every new account (sign-up form, admin, createsuperuser) gets its balance row and starter credits.
    if created and not raw:
        credits_grant_starter(user=instance, amount=settings.STARTER_CREDITS)
