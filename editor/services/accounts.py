"""Account chores allauth has no page for: sending the verification email again; addresses an operator vouches
for."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from allauth.account.internal.flows.email_verification import consume_email_verification_rate_limit
from allauth.account.models import EmailAddress
from django.db import transaction
from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = logging.getLogger(__name__)


def verification_email_resend(*, request: HttpRequest, email: str) -> bool:
    """Send a new confirmation link to an address that is waiting for one. True when an email went out.

    The caller shows the same words whatever this returns, so the form never tells whether an address has an
    account. allauth's own per-address cooldown (the `confirm_email` rate limit) applies: a link already sent
    stays valid, so a second request inside the cooldown sends nothing."""
    email = email.strip()
    if not email:
        return False
    address = (
        EmailAddress.objects.filter(email__iexact=email, verified=False, user__is_active=True)
        .select_related("user")
        .first()
    )
    if address is None or EmailAddress.objects.filter(email__iexact=email, verified=True).exists():
        return False
    if not consume_email_verification_rate_limit(request, address.email):
        return False
    address.send_confirmation(request)
    return True


@transaction.atomic
def email_address_mark_verified(*, user: AbstractBaseUser, email: str) -> EmailAddress:
    """Record `email` as the user's verified, primary address, so allauth's mandatory verification lets them sign
    in without a confirmation mail. Only for addresses someone at the console vouches for (createsuperuser, the
    `verify_email` command): it bypasses the mail round trip on purpose."""
    address, _ = EmailAddress.objects.update_or_create(
        user=user, email__iexact=email, defaults={"email": email, "verified": True}
    )
    if not EmailAddress.objects.filter(user=user, primary=True).exclude(pk=address.pk).exists():
        address.primary = True
        address.save(update_fields=["primary"])
    return address
