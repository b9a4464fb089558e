"""Staff reach the admin and the staff pages only with two-factor authentication set up."""
from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

STAFF_PREFIXES = ("/admin/", "/staff/")
# Logging out never needs a second factor.
EXEMPT_PATHS = ("/admin/logout/",)


class StaffMFARequiredMiddleware:
    """With STAFF_MFA_REQUIRED, a staff account without a TOTP authenticator is sent to set one up before any
    admin or staff page (login with the second factor is then asked by allauth's login flow)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.STAFF_MFA_REQUIRED and self._needs_setup(request):
            messages.warning(request, "Staff accounts need two-factor authentication: set up an authenticator app.")
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)

    @staticmethod
    def _needs_setup(request: HttpRequest) -> bool:
        path = request.path
        if not path.startswith(STAFF_PREFIXES) or path in EXEMPT_PATHS:
            return False
        user = request.user
        return bool(user.is_authenticated and user.is_staff
                    and not is_mfa_enabled(user, [Authenticator.Type.TOTP]))
