"""Settings for Fashion AI Studio, read from the environment.

Every value has an embedded default that needs nothing installed (SQLite, local media, Redis on
127.0.0.1:6379, the self-hosted Fashion AI service on 127.0.0.1:8765), so `make run` works on a fresh
machine. A malformed value fails loudly at start-up instead of silently falling back.
`fashionsite.settings_production` hardens this module for real deployments.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from boto3.s3.transfer import TransferConfig
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from fashionsite.env import env_bool, env_choice, env_float, env_int, env_text, env_words, require
from fashionsite.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A git-ignored .env (made by `make run`) may hold local values; real environment variables win.
if (BASE_DIR / ".env").is_file() and not os.environ.get("FAI_IGNORE_DOTENV"):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


# --- Core -----------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", True)
# The fallback key is only for local development; production settings refuse to start without one.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-insecure-key-change-me-" + "x" * 40)
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# The site's name and domain everywhere: page titles and header, account emails ("Hello from ..."), their subject
# prefix, the authenticator app's label. `migrate` writes both into django.contrib.sites' row (editor/signals.py).
SITE_NAME = env_text("SITE_NAME", "Fashion AI Studio", max_length=50)
# The domain is SITE_URL's host (and port). Not read from SITE_DOMAIN: that variable is the proxy's (docker/).
SITE_DOMAIN = urlsplit(SITE_URL).netloc or "127.0.0.1:8000"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.sites",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "storages",
    "editor",
    "editor.dashboard",
    "editor.api",
]

MIDDLEWARE = [
    # The response-header middleware comes first, so that every answer carries the security headers: the health
    # probes, the 413 of the size guard and the static files answered early below. None of them reads the body
    # or validates the Host; production exempts the health paths from the HTTPS redirect.
    "django.middleware.security.SecurityMiddleware",
    "fashionsite.headers.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Health probes answer before host validation, sessions and CSRF (see fashionsite/health.py).
    "fashionsite.health.HealthCheckMiddleware",
    "editor.middleware.RequestBodySizeLimitMiddleware",
    "editor.api.middleware.RateLimitHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # Staff without two-factor are sent to set it up before the admin or dashboard (STAFF_MFA_REQUIRED).
    "editor.dashboard.middleware.StaffMFARequiredMiddleware",
]
# Browser features the site never uses are off (fashionsite/headers.py); fullscreen only for the site itself.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: [] for feature in (
        "accelerometer", "autoplay", "camera", "display-capture", "encrypted-media", "geolocation", "gyroscope",
        "hid", "idle-detection", "magnetometer", "microphone", "midi", "payment", "picture-in-picture",
        "screen-wake-lock", "serial", "usb", "xr-spatial-tracking",
    )
} | {"fullscreen": ["self"]}

ROOT_URLCONF = "fashionsite.urls"
WSGI_APPLICATION = "fashionsite.wsgi.application"
SITE_ID = 1

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "editor.context_processors.credits",
            ],
        },
    },
]

# --- Database: SQLite by default, PostgreSQL (production's database) via DATABASE_URL ---------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0, min=0, unit="seconds")
# A reused connection is checked before its first query in each request or task: a restarted database then
# costs a reconnect, not an error. (No effect with CONN_MAX_AGE 0, where nothing is reused.)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one SQLite file in `make run`. A deferred transaction that reads and then writes
    # cannot wait for another writer (SQLite refuses the upgrade at once: "database is locked", a 500), so every
    # transaction takes the write lock when it begins, and waits up to the busy timeout for it.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT_SECONDS", 20, min=1, unit="seconds"),
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (login rate limits, dashboard) ------------------------------------------------------
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# Sessions are read on every request (the job page polls each second). With a shared cache (Redis) they are read
# from it and written through to the database. A per-process cache (the locmem default) would keep a logged-out
# session alive in the other web processes, so then the database alone holds them.
_PER_PROCESS_CACHES = ("locmem.LocMemCache", "dummy.DummyCache")
SESSION_ENGINE = (
    "django.contrib.sessions.backends.db"
    if CACHES["default"]["BACKEND"].endswith(_PER_PROCESS_CACHES)
    else "django.contrib.sessions.backends.cached_db"
)

# --- Auth and accounts (django-allauth) ---------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_EMAIL_VERIFICATION = env_choice("ACCOUNT_EMAIL_VERIFICATION", "mandatory", ("mandatory", "optional", "none"))
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "  # allauth's and our own emails' subjects
ACCOUNT_ADAPTER = "editor.accounts.AccountAdapter"
# The login and sign-up forms in the site's own words (templates/account/ renders them in the site's layout).
ACCOUNT_FORMS = {"login": "editor.accounts.SiteLoginForm", "signup": "editor.accounts.SiteSignupForm"}
# Brute force: allauth counts failed logins per IP and per account in the cache. Our adapter makes the
# account's key "account + client IP", so failures from one address never lock the owner out elsewhere.
ACCOUNT_RATE_LIMITS = {
    "login_failed": env.str("LOGIN_FAILED_RATE_LIMIT", default="10/m/ip,5/5m/key"),
    # Sign-up farming (each confirmed account gets STARTER_CREDITS): attempts per client IP.
    "signup": env.str("SIGNUP_RATE_LIMIT", default="20/m/ip,10/d/ip"),
    "reset_password": "20/m/ip,5/m/key",
}
# Two-factor (allauth.mfa): TOTP authenticator apps plus one-time recovery codes; no WebAuthn (needs fido2).
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = SITE_NAME
# Staff must have TOTP before they reach the admin or the staff pages (on by default in production settings).
STAFF_MFA_REQUIRED = env_bool("STAFF_MFA_REQUIRED", False)
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "editor:home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

# --- Email: console in development, SMTP (EMAIL_URL=smtp+tls://user:pass@host:587) in production --
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=f"{SITE_NAME} <noreply@localhost>")

# --- I18N ----------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static and media -------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))

AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
USE_S3 = bool(AWS_STORAGE_BUCKET_NAME)
# How long a presigned URL handed to a browser stays valid (seconds; S3 signs for at most 7 days).
S3_PRESIGN_MAX_SECONDS = 7 * 24 * 3600
MEDIA_URL_EXPIRE_SECONDS = env_int("MEDIA_URL_EXPIRE_SECONDS", 600, min=1, max=S3_PRESIGN_MAX_SECONDS, unit="seconds")

STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed files served by whitenoise (vendored source-map comments left alone).
    "staticfiles": {"BACKEND": "fashionsite.staticfiles.ProductionStaticFilesStorage"},
}
if DEBUG:
    # No collectstatic needed while developing.
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
if USE_S3:
    STORAGES["default"] = {
        # django-storages' S3Storage with one boto3 session per process (editor/storage.py says why).
        "BACKEND": "editor.storage.S3MediaStorage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            # Private bucket: objects carry no public ACL and every URL is presigned and expires.
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": MEDIA_URL_EXPIRE_SECONDS,
            # Every key is a fresh uuid4 (editor/models.py) or a job's own result key written on purpose, so the
            # HEAD that Django's save() sends to look for a free name is a wasted round trip on each upload.
            "file_overwrite": True,
            # Photos, thumbnails and results are well under the multipart threshold: one PUT in the calling thread
            # instead of a transfer thread pool per upload (measured: ~8 ms of thread hand-offs per file).
            "transfer_config": TransferConfig(use_threads=False),
            "signature_version": "s3v4",
            "addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default="path"),
        },
    }

# Upload limits (bytes and pixels) for photos.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 15 * 1024 * 1024, min=1, unit="bytes")
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 40_000_000, min=1, unit="pixels")
UPLOAD_MIN_SIDE = env_int("UPLOAD_MIN_SIDE", 128, min=1, unit="pixels")
require(UPLOAD_MIN_SIDE**2 <= UPLOAD_MAX_PIXELS,
        f"UPLOAD_MIN_SIDE ({UPLOAD_MIN_SIDE}) squared must not exceed UPLOAD_MAX_PIXELS ({UPLOAD_MAX_PIXELS}): "
        "no photo could be accepted")
# The original kept beside the 512 model input (full-resolution results): its long side is capped here (pixels).
# 4096 keeps a phone photo's detail where it matters and bounds the compose step's memory (~50 MB decoded).
ORIGINAL_MAX_SIDE = env_int("ORIGINAL_MAX_SIDE", 4096, min=512, max=8192, unit="pixels")
# Composing the full-resolution result: attempts before the job keeps only the 512 square the model made.
COMPOSE_MAX_ATTEMPTS = env_int("COMPOSE_MAX_ATTEMPTS", 3, min=1, max=20)
# With S3, files at least this big go from the browser straight to the bucket (presigned POST).
DIRECT_UPLOAD_MIN_BYTES = env_int("DIRECT_UPLOAD_MIN_BYTES", 2 * 1024 * 1024, min=0, unit="bytes")
# A direct-upload grant (presigned POST) is valid this long; raw objects older than that are swept.
DIRECT_UPLOAD_EXPIRE_SECONDS = env_int(
    "DIRECT_UPLOAD_EXPIRE_SECONDS", 600, min=1, max=S3_PRESIGN_MAX_SECONDS, unit="seconds"
)
# Direct-upload grants one user may take per hour (each allows one UPLOAD_MAX_BYTES object).
DIRECT_UPLOAD_GRANTS_PER_HOUR = env_int("DIRECT_UPLOAD_GRANTS_PER_HOUR", 30, min=1)
# A stored file no row refers to is deleted by the files sweep once it is this old.
FILES_ORPHAN_GRACE_SECONDS = env_int("FILES_ORPHAN_GRACE_SECONDS", 3600, min=60, unit="seconds")
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Product: credits and jobs --------------------------------------------------------------------
STARTER_CREDITS = env_int("STARTER_CREDITS", 10, min=0, unit="credits")
EDIT_COST_CREDITS = env_int("EDIT_COST_CREDITS", 1, min=1, unit="credits")
MAX_JOBS_IN_FLIGHT_PER_USER = env_int("MAX_JOBS_IN_FLIGHT_PER_USER", 5, min=1)
# The new-edit page suggests buying more at or below this balance (0: never).
LOW_CREDITS_THRESHOLD = env_int("LOW_CREDITS_THRESHOLD", 3, min=0, unit="credits")

# --- A person's data: exports and account deletion ----------------------------------------------------------
# A "download my data" link works this long; the ZIP is deleted after.
DATA_EXPORT_EXPIRE_SECONDS = env_int("DATA_EXPORT_EXPIRE_SECONDS", 7 * 24 * 3600, min=60, unit="seconds")
# How long a worker owns an export or deletion it works on; after that the sweep hands it to another worker.
ACCOUNT_TASK_LEASE_SECONDS = env_int("ACCOUNT_TASK_LEASE_SECONDS", 600, min=1, unit="seconds")
# A pause between the file deletes of an account being deleted (spreads a big account's deletes on the store).
ACCOUNT_DELETION_THROTTLE_SECONDS = env_float("ACCOUNT_DELETION_THROTTLE_SECONDS", 0.0, min=0, max=10,
                                              unit="seconds")

# --- Buying credits (Stripe Checkout): off unless STRIPE_SECRET_KEY is set ----------------------------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
# The webhook endpoint's signing secret (whsec_...): events are only believed with a valid signature.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Where the SDK sends API calls; empty means Stripe's own. Tests and `make run` point it at devservices/stripe.py.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="").rstrip("/")
# Browsers are sent here to pay (the Content-Security-Policy lets the buy form redirect to it).
STRIPE_CHECKOUT_ORIGIN = env.str("STRIPE_CHECKOUT_ORIGIN", default="") or (
    f"{urlsplit(STRIPE_API_BASE).scheme}://{urlsplit(STRIPE_API_BASE).netloc}" if STRIPE_API_BASE
    else "https://checkout.stripe.com"
)
# A signed event older than this is refused (replays); Stripe's SDK default.
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env_int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, min=1, unit="seconds")
require(not STRIPE_SECRET_KEY or bool(STRIPE_WEBHOOK_SECRET),
        "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: purchases could never be credited")
# "This result is wrong" refunds a finished edit; a person gets this many such refunds per calendar month (UTC).
# Reports past the allowance are still recorded for staff, without a refund. 0: reports only, never refunds.
WRONG_RESULT_REFUNDS_PER_MONTH = env_int("WRONG_RESULT_REFUNDS_PER_MONTH", 3, min=0)


# --- Developer API (/api/v1/, docs/api.md) ------------------------------------------------------------
def _host_ports(name: str) -> frozenset[tuple[str, int]]:
    """`host:port,host:port`: exact internal services the outbound fetches may reach (tests, your own store)."""
    pairs: set[tuple[str, int]] = set()
    for item in env.str(name, default="").split(","):
        item = item.strip().lower()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        require(bool(sep and host and port.isdigit() and 0 < int(port) < 65536),
                f"{name} entry {item!r} must be host:port")
        pairs.add((host, int(port)))
    return frozenset(pairs)


# Requests per key per minute; every answer carries RateLimit-* headers, a 429 also Retry-After.
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 120, min=1)
# `Prefer: wait=N` holds an answer at most this long (the API's ASGI server waits, no thread does).
API_MAX_WAIT_SECONDS = env_int("API_MAX_WAIT_SECONDS", 60, min=0, max=300, unit="seconds")
# The async operations' database work runs on a few threads per API process (editor/api/waiting.py), which keep
# their connection this long: light calls (key check, reads) on API_DB_THREADS, creates (upload decode, URL
# fetch) on API_CREATE_THREADS. Connections per process: at most the two added up.
API_DB_THREADS = env_int("API_DB_THREADS", 4, min=1, max=64)
API_CREATE_THREADS = env_int("API_CREATE_THREADS", 4, min=1, max=64)
API_DB_CONN_MAX_AGE = env_int("API_DB_CONN_MAX_AGE", 300, min=0, unit="seconds")
# Image URLs given to POST /api/v1/edits: hosts allowed ("*": any public host). Internal addresses are refused
# whatever this says (fashionai/fetch.py's rules), except exact host:port pairs in API_FETCH_ALLOW_INTERNAL.
API_IMAGE_URL_ALLOW_HOSTS: list[str] = [h.strip().lower() for h in env.list("API_IMAGE_URL_ALLOW_HOSTS", default=["*"])
                                        if h.strip()]
API_FETCH_ALLOW_INTERNAL = _host_ports("API_FETCH_ALLOW_INTERNAL")
API_IMAGE_URL_TIMEOUT_SECONDS = env_float("API_IMAGE_URL_TIMEOUT_SECONDS", 15.0, min=0.1, max=120, unit="seconds")
# An Idempotency-Key is remembered this long (Stripe: 24 h).
API_IDEMPOTENCY_SECONDS = env_int("API_IDEMPOTENCY_SECONDS", 24 * 3600, min=60, unit="seconds")
API_KEYS_PER_USER = env_int("API_KEYS_PER_USER", 10, min=1)
# Webhooks to users' receivers: public addresses only, like image URLs (WEBHOOK_ALLOW_INTERNAL: exact host:port
# exceptions, for tests and local receivers). Retries follow a fixed 24 h schedule (editor/services/webhooks.py);
# WEBHOOK_RETRY_SCALE shrinks it for tests.
WEBHOOK_ALLOW_INTERNAL = _host_ports("WEBHOOK_ALLOW_INTERNAL")
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0, min=0.1, max=60, unit="seconds")
WEBHOOK_RETRY_SCALE = env_float("WEBHOOK_RETRY_SCALE", 1.0, min=0.00001, max=1)
WEBHOOK_ENDPOINTS_PER_USER = env_int("WEBHOOK_ENDPOINTS_PER_USER", 10, min=1)
# credits.low fires when a charge takes the balance below this.
WEBHOOK_CREDITS_LOW_THRESHOLD = env_int("WEBHOOK_CREDITS_LOW_THRESHOLD", 3, min=1, unit="credits")
# After a rotation the old secret keeps signing (beside the new one) this long, so receivers can switch over.
WEBHOOK_SECRET_OVERLAP_SECONDS = env_int("WEBHOOK_SECRET_OVERLAP_SECONDS", 24 * 3600, min=0, unit="seconds")

# --- Operators' dashboard ----------------------------------------------------------------------------
# Warn when the oldest job in flight has waited longer than this (workers down or overloaded).
DASHBOARD_BACKLOG_ALERT_SECONDS = env_int("DASHBOARD_BACKLOG_ALERT_SECONDS", 600, min=1, unit="seconds")
# Warn about submitted jobs this close to the provider's retention deadline (their results may be lost).
DASHBOARD_RETENTION_WARNING_SECONDS = env_int("DASHBOARD_RETENTION_WARNING_SECONDS", 600, min=1, unit="seconds")
# List a client address as suspected sign-up farming when it made this many accounts on one day.
# Warn when this share of the last hour's finished edits failed or expired (refusals for the photo or prompt left
# out), once at least DASHBOARD_FAULT_ALERT_MIN_EDITS finished.
DASHBOARD_FAULT_ALERT_PERCENT = env_int("DASHBOARD_FAULT_ALERT_PERCENT", 25, min=1, max=100, unit="percent")
DASHBOARD_FAULT_ALERT_MIN_EDITS = env_int("DASHBOARD_FAULT_ALERT_MIN_EDITS", 10, min=1)
DASHBOARD_SIGNUP_FARMING_THRESHOLD = env_int("DASHBOARD_SIGNUP_FARMING_THRESHOLD", 5, min=1)

# --- The Fashion AI provider (Segmind's protocol) ---------------------------------------------------
SEGMIND_API_KEY = env.str("SEGMIND_API_KEY", default="")
# The Segmind cloud when a Segmind key is given, else our self-hosted service.
FASHION_AI_BASE_URL = (
    env.str("FASHION_AI_BASE_URL", default="")
    or ("https://api.segmind.com/v1" if SEGMIND_API_KEY else "http://127.0.0.1:8765/v1")
).rstrip("/")
if not FASHION_AI_BASE_URL.endswith("/v1"):
    raise ImproperlyConfigured("FASHION_AI_BASE_URL must end in /v1 (the segmind SDK derives /v2 from it)")
FASHION_AI_API_KEY = env.str("FASHION_AI_API_KEY", default="") or SEGMIND_API_KEY
FASHION_AI_MODEL = env.str("FASHION_AI_MODEL", default="fashion-ai")
FASHION_AI_TIMEOUT_SECONDS = env_float("FASHION_AI_TIMEOUT_SECONDS", 30.0, positive=True, unit="seconds")
# The provider forgets results after this long; the sweeper expires jobs that can no longer be saved.
FASHION_AI_RETENTION_SECONDS = env_int("FASHION_AI_RETENTION_SECONDS", 3600, min=1, unit="seconds")
# Give up on a job that has not finished after this long.
FASHION_AI_JOB_DEADLINE_SECONDS = env_int("FASHION_AI_JOB_DEADLINE_SECONDS", 1800, min=1, unit="seconds")
# The provider fetches the input from a presigned URL: valid as long as the job may run, no longer.
PROVIDER_INPUT_URL_EXPIRE_SECONDS = env_int(
    "PROVIDER_INPUT_URL_EXPIRE_SECONDS", FASHION_AI_JOB_DEADLINE_SECONDS, min=1, max=S3_PRESIGN_MAX_SECONDS,
    unit="seconds",
)
# Expected provider time before any history exists: Segmind's cloud measured ~64 s a job, the self-hosted
# engine well under a second plus its queue. Recent jobs' times replace this as soon as there are some.
FASHION_AI_EXPECTED_SECONDS = env_float(
    "FASHION_AI_EXPECTED_SECONDS", 64.0 if "segmind.com" in FASHION_AI_BASE_URL else 4.0, min=0, unit="seconds"
)
FASHION_AI_RESULT_MAX_BYTES = env_int("FASHION_AI_RESULT_MAX_BYTES", 20 * 1024 * 1024, min=1, unit="bytes")
# A result larger than this (pixels, read from its header before decoding) is refused: a small PNG can claim 144 Mpx.
FASHION_AI_RESULT_MAX_PIXELS = env_int("FASHION_AI_RESULT_MAX_PIXELS", 16_000_000, min=1, unit="pixels")
# Send the input as a data URI instead of a presigned URL (for providers that cannot reach storage).
FASHION_AI_SEND_DATA_URI = env_bool("FASHION_AI_SEND_DATA_URI", not USE_S3)
# The free region preview on the new-edit page: our engine's extension (POST /v2/fashion-ai/preview), not Segmind's.
# By default the provider itself when it is our self-hosted service. With Segmind's cloud there is none (the page
# shows no preview) unless FASHION_AI_PREVIEW_URL names a self-hosted engine; its answer is then labelled an estimate
# (Segmind's model may choose another region). Its key: FASHION_AI_PREVIEW_API_KEY (never the Segmind key).
_PROVIDER_IS_SEGMIND_CLOUD = bool(SEGMIND_API_KEY) or "segmind.com" in FASHION_AI_BASE_URL
FASHION_AI_PREVIEW_URL = env.str("FASHION_AI_PREVIEW_URL", default="") or (
    "" if _PROVIDER_IS_SEGMIND_CLOUD else FASHION_AI_BASE_URL.removesuffix("/v1") + "/v2/fashion-ai/preview"
)
FASHION_AI_PREVIEW_API_KEY = env.str("FASHION_AI_PREVIEW_API_KEY", default="") or (
    "" if _PROVIDER_IS_SEGMIND_CLOUD else FASHION_AI_API_KEY
)
FASHION_AI_PREVIEW_IS_ESTIMATE = _PROVIDER_IS_SEGMIND_CLOUD
# The preview must feel instant (the engine answers in ~0.1 s); past this the page simply shows none.
FASHION_AI_PREVIEW_TIMEOUT_SECONDS = env_float("FASHION_AI_PREVIEW_TIMEOUT_SECONDS", 3.0, positive=True,
                                               unit="seconds")
# Previews per user per minute (they are free, but each one costs the engine ~0.1 s of CPU).
FASHION_AI_PREVIEW_PER_MINUTE = env_int("FASHION_AI_PREVIEW_PER_MINUTE", 30, min=1)

# --- Content safety and provenance (docs/security.md, "Content safety and provenance") ----------------
# Screen uploads with NudeNet before storing them (editor/content_screening.py); off by default because the
# self-hosted engine already screens every job's input and result (fashionai/safety.py).
UPLOAD_SCREENING = env_bool("UPLOAD_SCREENING", False)
# NudeNet 3.4's classes; the explicit-nudity ones refuse an upload by default.
CONTENT_CLASSES = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)
UPLOAD_SCREENING_BLOCK = env_words(
    "UPLOAD_SCREENING_BLOCK",
    ("FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "BUTTOCKS_EXPOSED",
     "ANUS_EXPOSED"),
    CONTENT_CLASSES,
)
# Detector score from which a blocked class refuses (NudeNet itself drops detections under 0.2).
UPLOAD_SCREENING_THRESHOLD = env_float("UPLOAD_SCREENING_THRESHOLD", 0.5, min=0.2, max=1)
# Sign every stored result with a C2PA manifest (editor/provenance.py): an unencrypted PEM private key (EC P-256/
# P-384/P-521, RSA or Ed25519) and its PEM certificate chain, leaf first. Both or neither; files, so the key can be
# a mounted secret. Unset: results are stored without a manifest.
C2PA_SIGNING_KEY_FILE = env.str("C2PA_SIGNING_KEY_FILE", default="")
C2PA_SIGNING_CERTS_FILE = env.str("C2PA_SIGNING_CERTS_FILE", default="")
require(bool(C2PA_SIGNING_KEY_FILE) == bool(C2PA_SIGNING_CERTS_FILE),
        "C2PA_SIGNING_KEY_FILE and C2PA_SIGNING_CERTS_FILE go together: set both (signing on) or neither")
for _name, _path in (("C2PA_SIGNING_KEY_FILE", C2PA_SIGNING_KEY_FILE),
                     ("C2PA_SIGNING_CERTS_FILE", C2PA_SIGNING_CERTS_FILE)):
    require(not _path or os.path.isfile(_path), f"{_name}={_path!r} is not a readable file")
# PEM certificates a manifest's signer may chain to for `editor.provenance.verify` to call it "Trusted".
C2PA_TRUST_ANCHORS_FILE = env.str("C2PA_TRUST_ANCHORS_FILE", default="")
require(not C2PA_TRUST_ANCHORS_FILE or os.path.isfile(C2PA_TRUST_ANCHORS_FILE),
        f"C2PA_TRUST_ANCHORS_FILE={C2PA_TRUST_ANCHORS_FILE!r} is not a readable file")
# Draw a visible "AI-edited" label into every stored result (so into downloads too), before it is signed.
RESULT_AI_MARK = env_bool("RESULT_AI_MARK", False)

# Use our own service's extensions to Segmind's protocol (docs/fashionai.md "Ours"): an Idempotency-Key per job, so
# an unanswered submit is sent again instead of failed. Segmind's cloud has none of them: off with a Segmind key.
FASHION_AI_EXTENSIONS = env_bool(
    "FASHION_AI_EXTENSIONS", not SEGMIND_API_KEY and "segmind.com" not in FASHION_AI_BASE_URL
)
# Ours: the site's completion-webhook endpoint (/provider/webhook/) as the provider reaches it. Set (with the
# extensions on), workers register it with the provider and poll only as a fallback. Empty: polling only.
FASHION_AI_WEBHOOK_URL = env.str("FASHION_AI_WEBHOOK_URL", default="")
# The Standard Webhooks secret the site registers (whsec_ + base64 of >= 24 bytes); unset: derived from SECRET_KEY,
# so every web and worker process knows it without storing it anywhere.
FASHION_AI_WEBHOOK_SECRET = env.str("FASHION_AI_WEBHOOK_SECRET", default="") or (
    "whsec_"
    + base64.b64encode(hmac.new(SECRET_KEY.encode(), b"fashion-ai-provider-webhook", hashlib.sha256).digest()).decode()
)
# With webhooks a job is polled this long after it should have been done (its ETA, else the expected time, then
# this often): the fallback when a delivery is lost.
FASHION_AI_WEBHOOK_FALLBACK_POLL_SECONDS = env_float(
    "FASHION_AI_WEBHOOK_FALLBACK_POLL_SECONDS", 30.0, positive=True, unit="seconds"
)
FASHION_AI_WEBHOOKS = FASHION_AI_EXTENSIONS and bool(FASHION_AI_WEBHOOK_URL)

# --- Edit job polling (editor/polling.py). Every timing is a setting so tests can run them fast.
# Densest poll interval, used near a job's expected finish: how late we may see COMPLETED.
POLL_MIN_INTERVAL_SECONDS = env_float("POLL_MIN_INTERVAL_SECONDS", 1.0, positive=True, unit="seconds")
# Longest single countdown; far below the broker's visibility timeout so no message is redelivered twice.
POLL_MAX_INTERVAL_SECONDS = env_float("POLL_MAX_INTERVAL_SECONDS", 30.0, positive=True, unit="seconds")
# While young, wait this fraction of the time left until the expected finish (sparse early, dense late).
POLL_APPROACH_FRACTION = env_float("POLL_APPROACH_FRACTION", 0.5, positive=True, max=1)
# Longest wait after 429/5xx/network errors (Retry-After may ask for less, never for more than this).
POLL_BACKOFF_MAX_SECONDS = env_float("POLL_BACKOFF_MAX_SECONDS", 60.0, positive=True, unit="seconds")
# How long a task owns a job it works on; after that the sweeper may hand the job to another worker.
JOB_TASK_LEASE_SECONDS = env_float("JOB_TASK_LEASE_SECONDS", 150.0, positive=True, unit="seconds")
# A scheduled poll this late means its message was lost (killed worker, Redis restart): the sweeper re-enqueues it.
SWEEP_OVERDUE_GRACE_SECONDS = env_float("SWEEP_OVERDUE_GRACE_SECONDS", 30.0, min=0, unit="seconds")
require(POLL_MIN_INTERVAL_SECONDS <= POLL_MAX_INTERVAL_SECONDS,
        f"POLL_MIN_INTERVAL_SECONDS ({POLL_MIN_INTERVAL_SECONDS:g}) must not exceed "
        f"POLL_MAX_INTERVAL_SECONDS ({POLL_MAX_INTERVAL_SECONDS:g})")
require(POLL_MIN_INTERVAL_SECONDS <= POLL_BACKOFF_MAX_SECONDS,
        f"POLL_MIN_INTERVAL_SECONDS ({POLL_MIN_INTERVAL_SECONDS:g}) must not exceed "
        f"POLL_BACKOFF_MAX_SECONDS ({POLL_BACKOFF_MAX_SECONDS:g})")

# --- Celery -----------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Empty (as in a copied .env.example) means "same as REDIS_URL", never Celery's amqp default.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL
# No result backend: tasks write their outcome to the database, nobody waits on AsyncResult.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# JSON only: never unpickle what arrives over the broker.
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Ack after the task ran so a killed worker's message is redelivered; tasks are idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process: polls are short and many, a greedy worker would hoard them.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Countdowns are short (minutes at most), far below the visibility timeout, so no duplicate redelivery.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, min=1, unit="seconds")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # A worker of several queues takes from the first one listed while it has messages (kombu's default is round
    # robin): the images worker (`--queues images,compose`) saves every COMPLETED 512 result before it starts a
    # full-resolution compose, which takes seconds.
    "queue_order_strategy": "priority",
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A poll or submit is one HTTP call; anything this slow is stuck.
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_TASK_TIME_LIMIT = 120
# A countdown or a running task that outlasts the visibility timeout is delivered twice; a provider call that
# outlasts the soft time limit is cut off.
for _name, _seconds in (("POLL_MAX_INTERVAL_SECONDS", POLL_MAX_INTERVAL_SECONDS),
                        ("POLL_BACKOFF_MAX_SECONDS", POLL_BACKOFF_MAX_SECONDS)):
    require(_seconds < CELERY_VISIBILITY_TIMEOUT,
            f"{_name} ({_seconds:g}) must be below CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT})")
require(CELERY_TASK_TIME_LIMIT < CELERY_VISIBILITY_TIMEOUT,
        f"CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT}) must exceed the task time limit "
        f"({CELERY_TASK_TIME_LIMIT} s)")
require(FASHION_AI_TIMEOUT_SECONDS < CELERY_TASK_SOFT_TIME_LIMIT,
        f"FASHION_AI_TIMEOUT_SECONDS ({FASHION_AI_TIMEOUT_SECONDS:g}) must be below the task soft time limit "
        f"({CELERY_TASK_SOFT_TIME_LIMIT} s)")
CELERY_WORKER_SEND_TASK_EVENTS = False
# Two kinds of work, two queues. The default queue holds the I/O steps (submit, poll, cancel, sweeps: each one HTTP
# call or a few queries), served by a thread pool that keeps many in flight per process (`--pool threads
# --concurrency 64`). The finish step (download, decode, re-encode, thumbnail, store: Pillow, which releases the GIL
# in its C loops, and network round trips) has its own queue on the images worker's few threads, so image work
# never stalls the polls and a COMPLETED job does not wait behind them. (Thread pools do not enforce the time
# limits above; every provider call has FASHION_AI_TIMEOUT_SECONDS.)
CELERY_IMAGES_QUEUE = "images"
# Composing a full-resolution result (seconds of CPU) has its own queue, "compose": the images worker serves it
# beside the finish step (docker/entrypoint.sh), never the I/O threads, so it never holds up submits and polls;
# a busy site can give it workers of its own (`celery worker --queues compose`).
COMPOSE_QUEUE = "compose"
CELERY_TASK_ROUTES = {
    "editor.tasks.finish_edit_job": {"queue": CELERY_IMAGES_QUEUE},
    "editor.tasks.compose_edit_job": {"queue": COMPOSE_QUEUE},
}
# Celery's Django fixup closes every database connection after every task unless this is set, whatever
# CONN_MAX_AGE says: a new PostgreSQL connection per poll. fashionsite/celery.py closes them the way Django does
# after a request instead (honouring CONN_MAX_AGE and dropping broken ones); the fixup then only recycles them
# every this many tasks.
CELERY_DB_REUSE_MAX = 1000
# An uploaded photo that no edit uses is deleted after this long (seconds).
UNUSED_PHOTO_GRACE_SECONDS = env_int("UNUSED_PHOTO_GRACE_SECONDS", 24 * 3600, min=1, unit="seconds")
CELERY_BEAT_SCHEDULE = {
    "sweep-edit-jobs": {
        "task": "editor.tasks.sweep_edit_jobs",
        "schedule": timedelta(seconds=env_int("SWEEP_INTERVAL_SECONDS", 30, min=1, unit="seconds")),
    },
    # Photos uploaded but never used by an edit (abandoned pages) are deleted after a grace period.
    "delete-unused-photos": {
        "task": "editor.tasks.delete_unused_photos",
        "schedule": timedelta(hours=1),
    },
    # Raw direct uploads never finished (they keep their EXIF/GPS) go once their upload policy expired.
    "expire-direct-uploads": {
        "task": "editor.tasks.expire_direct_uploads",
        "schedule": timedelta(minutes=5),
    },
    # Files no row refers to (a delete that hit a storage hiccup) go after a grace period.
    "sweep-orphan-files": {
        "task": "editor.tasks.sweep_orphan_files",
        "schedule": timedelta(hours=6),
    },
    # Data exports and account deletions whose worker died (or that never got queued) start again.
    "sweep-account-tasks": {
        "task": "editor.tasks.sweep_account_tasks",
        "schedule": timedelta(seconds=env_int("ACCOUNT_SWEEP_INTERVAL_SECONDS", 60, min=1, unit="seconds")),
    },
    # Refunds or disputes that raced their payment's own webhook are applied once the payment is booked.
    "reconcile-payments": {
        "task": "editor.tasks.reconcile_payments",
        "schedule": timedelta(minutes=5),
    },
    # Webhook deliveries whose retry is due (long delays are rows, not Celery countdowns: a countdown past the
    # broker's visibility timeout would be delivered twice).
    "deliver-due-webhooks": {
        "task": "editor.api.tasks.deliver_due_webhooks",
        "schedule": timedelta(seconds=env_int("WEBHOOK_SWEEP_INTERVAL_SECONDS", 15, min=1, unit="seconds")),
    },
    # Idempotency keys older than API_IDEMPOTENCY_SECONDS are forgotten.
    "expire-idempotency-keys": {
        "task": "editor.api.tasks.expire_idempotency_keys",
        "schedule": timedelta(hours=1),
    },
    # Keeps the dashboard's daily rollup for today and yesterday current (idempotent rebuild).
    "refresh-usage-rollup": {
        "task": "editor.dashboard.tasks.refresh_usage_rollup",
        "schedule": timedelta(seconds=env_int("USAGE_ROLLUP_INTERVAL_SECONDS", 300, min=1, unit="seconds")),
    },
}
# Tests run tasks eagerly only where they say so.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Logging -------------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
# JSON lines for log collectors in production, readable lines while developing. Both redact secrets
# (API keys, passwords, presigned-URL signatures, secret settings' values): fashionsite/logging.py.
LOG_FORMAT = env_choice("LOG_FORMAT", "plain" if DEBUG else "json", ("plain", "json"))
# One redacted console handler, shared with gunicorn; httpx/httpcore request logs off (URLs are data).
LOGGING = logging_config(level=LOG_LEVEL, fmt=LOG_FORMAT)
# Celery would replace the root handler with its own unredacted, non-JSON one.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Workers record a heartbeat in Redis this often (fashionsite/heartbeat.py, shown on the dashboard).
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 10, min=1, unit="seconds")

# --- Sentry: only when a DSN is given; no personal data, keys redacted before sending ------------------
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from fashionsite.logging import init_sentry

    init_sentry(
        dsn=SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="production") or "production",
        release=env.str("SENTRY_RELEASE", default="") or None,
        traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, min=0, max=1),
    )

# --- Content Security Policy (django-csp): our own origin only, no inline scripts or styles ----------
# Images (presigned GETs) and direct uploads (presigned POSTs) also come from / go to the bucket.
_csp_media: list[str] = []
if USE_S3:
    _endpoint = STORAGES["default"]["OPTIONS"]["endpoint_url"]
    if _endpoint:
        _parts = urlsplit(_endpoint)
        _csp_media.append(f"{_parts.scheme}://{_parts.netloc}")
    else:
        _csp_media.append("https://*.amazonaws.com")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "blob:", *_csp_media],  # blob: previews of the photo being uploaded
        "connect-src": [SELF, *_csp_media],
        # The buy form redirects to Stripe's hosted checkout page.
        "form-action": [SELF, *_csp_media, *([STRIPE_CHECKOUT_ORIGIN] if STRIPE_SECRET_KEY else [])],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
        "base-uri": [SELF],
    },
}
