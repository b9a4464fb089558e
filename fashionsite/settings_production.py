"""Production settings: the base settings, hardened. Every secret comes from the environment."""
from __future__ import annotations

import os

# Production never runs in debug, whatever the environment says.
os.environ["DJANGO_DEBUG"] = "False"

from .env import env_bool, env_int  # noqa: E402
from .settings import *  # noqa: E402,F403
from .settings import DATABASES, env  # noqa: E402

DEBUG = False
# No fallback here: a missing key is a start-up error, not a silently insecure site.
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

# TLS is terminated by a proxy in front of gunicorn; trust its X-Forwarded-Proto header.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Every request arrives from the proxy's address: the login rate limit must count per client (the last
# X-Forwarded-For entry, the one the proxy appended), or one attacker locks every user out.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("ALLAUTH_TRUSTED_PROXY_COUNT", 1, min=0, max=10)
# Staff reach the admin and the staff pages only with TOTP two-factor set up (allauth.mfa).
STAFF_MFA_REQUIRED = env_bool("STAFF_MFA_REQUIRED", True)
# Health checks come from inside the network over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000, min=0, unit="seconds")
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# A database that does not answer fails a request (and /health/ready/) in seconds instead of hanging a worker.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
