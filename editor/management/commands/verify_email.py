"""Mark an account's email address verified (an operator vouches for it), so it can sign in at once."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from editor.services.accounts import email_address_mark_verified


class Command(BaseCommand):
    help = ("Mark the address of an existing account verified, so it can sign in without the confirmation mail "
            "(accounts made with createsuperuser are verified already).")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("email", help="the account's email address")

    def handle(self, *args: Any, email: str, **options: Any) -> None:
        users = list(get_user_model().objects.filter(email__iexact=email)[:2])
        if len(users) != 1:
            raise CommandError(f"{len(users) or 'No'} accounts have the email {email!r}: nothing was changed.")
        email_address_mark_verified(user=users[0], email=users[0].email)
        if options["verbosity"]:
            self.stdout.write(f"{users[0].email} is verified: the account can sign in now.")
