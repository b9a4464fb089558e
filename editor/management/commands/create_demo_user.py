"""Create (or reset) the demo account that `make run` prints, with a verified email address."""
from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from editor.services.credits import credits_grant_starter

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-123"


class Command(BaseCommand):
    help = "Create the local demo user (for development only) and print its email and password."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--email", default=DEMO_EMAIL)
        parser.add_argument("--password", default=DEMO_PASSWORD)

    @transaction.atomic
    def handle(self, *args: Any, email: str, password: str, **options: Any) -> None:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=email.split("@")[0], defaults={"email": email})
        if created:
            user.set_password(password)
            user.save()
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        # The address is verified here, not confirmed by mail: give the welcome credits a confirmation would.
        credits_grant_starter(user=user, amount=settings.STARTER_CREDITS)
        state = "created" if created else "already exists (password unchanged)"
        self.stdout.write(f"Demo user {state}: email {email}  password {password}")
