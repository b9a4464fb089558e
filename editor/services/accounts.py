"""Account chores allauth has no page for: sending the verification email again."""
from __future__ import annotations

import logging

from allauth.account.internal.flows.email_verification import consume_email_verification_rate_limit
from allauth.account.models import EmailAddress
from django.http import HttpRequest

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
