from __future__ import annotations

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from editor.api.views import api
from editor.views.accounts import resend_verification

urlpatterns = [
    path("health/", include("fashionsite.health")),
    path("staff/", include("editor.dashboard.urls")),
    # Before the admin's own login (which has no rate limit and no second factor): anonymous visitors are sent to
    # allauth's login (its failed-login limits, the TOTP step) and back; signed-in non-staff get 403.
    path("admin/login/", secure_admin_login(admin.site.login), name="staff_admin_login"),
    path("admin/", admin.site.urls),
    path("accounts/verification/resend/", resend_verification, name="account_resend_verification"),
    path("accounts/", include("allauth.urls")),
    # The developer API (docs/api.md); production serves it from the ASGI process (Prefer: wait).
    path("api/v1/", api.urls),
    path("", include("editor.urls")),
]
