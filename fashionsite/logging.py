"""Structured logs that never carry secrets, and Sentry that never receives them.

`RedactingJsonFormatter` writes one JSON object per line (python-json-logger); `RedactingFormatter` is the
human-readable development format. Both, and `RedactSecretsFilter` (attached to every handler so third-party
formatters are covered too), pass every string through `redact()`, which removes:

- the values of secret settings and environment variables (SECRET_KEY, SEGMIND_API_KEY, AWS keys, passwords in
  database/Redis/SMTP URLs, the self-hosted service's keys, SENTRY_DSN, ...), wherever they appear;
- `name=value` / `"name": "value"` / `name: value` pairs whose name says secret: x-api-key, api_key, password,
  token, secret, X-Amz-Signature/Credential/Security-Token (presigned URLs), Authorization;
- passwords in URLs (`scheme://user:password@host`) and AWS access key ids;
- the query string and userinfo of every absolute URL (`fashionai.redact`, the same function the Fashion AI
  service uses): a presigned URL keeps scheme, host and path, so nobody can fetch the object from a log line.

This module is imported by settings (Sentry) and gunicorn's config, so it must not touch Django settings at import.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from pythonjsonlogger.json import JsonFormatter

# Standard library only, shared with the service: one redaction for both.
from fashionai.redact import redact_urls

REDACTED = "[REDACTED]"

# Setting / environment variable names whose values are secrets.
SECRET_NAME_RE = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|APIKEY|ACCESS_KEY|PRIVATE|CREDENTIAL|DSN|SIGNATURE",
                            re.IGNORECASE)
# Settings/env values that are URLs which may embed a password.
URL_SETTING_NAMES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CACHE_URL", "EMAIL_URL", "SENTRY_DSN")
# Values shorter than this are not treated as secrets by value (they would redact ordinary words).
MIN_SECRET_LENGTH = 6

# Key names (in query strings, headers, dicts, JSON) whose values are secrets. `HTTP_X_API_KEY` is how Django's
# request.META spells the header.
_SECRET_KEY_NAMES = (
    r"(?:http_)?x[-_]api[-_]key|api[-_]?key|apikey|x[-_]amz[-_](?:signature|credential|security[-_]token)"
    r"|awsaccesskeyid|signature|sig|access[-_]?key(?:[-_]id)?|secret(?:[-_]access)?(?:[-_]key)?|client[-_]secret"
    r"|password|passwd|pwd|(?:access[-_]|auth[-_]|refresh[-_]|id[-_])?token|sessionid|csrftoken|dsn"
)
_QUOTED_OR_BARE_VALUE = r"""(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^\s&;,'"}\])]+)"""
_KEY_VALUE_RE = re.compile(
    # Any prefix counts: aws_secret_access_key, SEGMIND_API_KEY, csrfmiddlewaretoken.
    r"""(?P<key>(?<![A-Za-z0-9_-])["']?[A-Za-z0-9_-]*?(?:""" + _SECRET_KEY_NAMES + r""")["']?)(?P<sep>\s*[:=]\s*)"""
    r"(?P<value>" + _QUOTED_OR_BARE_VALUE + ")",
    re.IGNORECASE,
)
_AUTHORIZATION_RE = re.compile(
    r"""(?P<key>(?<![A-Za-z0-9_-])["']?(?:http_)?(?:proxy[-_])?authorization["']?\s*[:=]\s*["']?)"""
    r"""(?P<value>(?:(?:bearer|basic|token|digest)\s+)?[^\s"',}]+)""",
    re.IGNORECASE,
)
_URL_PASSWORD_RE = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^@/\s]+)(?P<at>@)",
                              re.IGNORECASE)
_AWS_ACCESS_KEY_ID_RE = re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b")
_SECRET_NAME_KEY_RE = re.compile(r"^[A-Za-z0-9_-]*?(?:" + _SECRET_KEY_NAMES + r"|authorization|cookie|set[-_]cookie)$",
                                 re.IGNORECASE)


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _secret_values_from(names_and_values: Iterable[tuple[str, Any]]) -> set[str]:
    found: set[str] = set()
    for name, value in names_and_values:
        if not isinstance(value, str) or not value:
            continue
        if name.upper() in URL_SETTING_NAMES or "://" in value:
            password = _url_password(value)
            if password:
                found.add(password)
        if name.upper() == "SENTRY_DSN" or (SECRET_NAME_RE.search(name) and "://" not in value):
            found.add(value)
            if name.upper() == "FASHIONAI_API_KEYS":
                # "key1,key2:100": each key alone (credits after the colon are not secret).
                found.update(item.partition(":")[0].strip() for item in value.split(","))
    return {value for value in found if len(value) >= MIN_SECRET_LENGTH}


def _settings_ready() -> bool:
    try:
        from django.conf import settings

        return bool(settings.configured)
    except Exception:  # Django missing or settings broken: the environment still gives most secrets
        return False


def _settings_items() -> list[tuple[str, Any]]:
    from django.conf import settings

    named = {name: getattr(settings, name, None) for name in dir(settings) if name.isupper()}
    items: list[tuple[str, Any]] = list(named.items())
    # Secrets nested in structured settings: database passwords, storage credentials, cache URLs.
    for alias, database in (named.get("DATABASES") or {}).items():
        items.append((f"DATABASES_{alias}_PASSWORD", database.get("PASSWORD")))
    for alias, storage in (named.get("STORAGES") or {}).items():
        for option, value in (storage.get("OPTIONS") or {}).items():
            if option in ("secret_key", "access_key", "security_token"):
                items.append((f"STORAGES_{alias}_{option}_KEY", value))
    for alias, cache in (named.get("CACHES") or {}).items():
        location = cache.get("LOCATION")
        for loc in location if isinstance(location, list | tuple) else [location]:
            items.append((f"CACHES_{alias}_URL", loc))
    for fallback in named.get("SECRET_KEY_FALLBACKS") or []:
        items.append(("SECRET_KEY_FALLBACK", fallback))
    return items


def secret_values() -> tuple[str, ...]:
    """Secret values known from the environment and (once loaded) Django settings, longest first so a key that
    contains another is replaced whole."""
    return _secret_values(with_settings=_settings_ready())


@lru_cache(maxsize=2)
def _secret_values(*, with_settings: bool) -> tuple[str, ...]:
    items = list(os.environ.items()) + (_settings_items() if with_settings else [])
    return tuple(sorted(_secret_values_from(items), key=len, reverse=True))


def reset_secret_values() -> None:
    """Forget the cached secret values (tests that change settings or the environment)."""
    _secret_values.cache_clear()


def _redact_key_value(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"


def redact(text: str) -> str:
    """`text` with every secret we can recognise replaced by [REDACTED]."""
    if not text:
        return text
    for value in secret_values():
        if value in text:
            text = text.replace(value, REDACTED)
    text = redact_urls(text)
    text = _URL_PASSWORD_RE.sub(lambda m: f"{m.group('head')}{REDACTED}{m.group('at')}", text)
    text = _AUTHORIZATION_RE.sub(lambda m: f"{m.group('key')}{REDACTED}", text)
    text = _KEY_VALUE_RE.sub(_redact_key_value, text)
    return _AWS_ACCESS_KEY_ID_RE.sub(REDACTED, text)


def redact_data(value: Any, *, _depth: int = 0) -> Any:
    """Redact strings inside dicts/lists (log extras, Sentry events); a dict key that names a secret loses its
    value whole. Objects of other types become their redacted str() so nothing escapes through repr()."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float | datetime | date):
        return value
    if _depth > 12:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if isinstance(key, str) and _SECRET_NAME_KEY_RE.match(key) and item
                  else redact_data(item, _depth=_depth + 1))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_data(item, _depth=_depth + 1) for item in value]
    return redact(str(value))


def _describe_request(request: Any) -> dict[str, Any]:
    """Django attaches the HttpRequest to `django.request` records; keep what helps, not its headers."""
    try:
        return {"method": request.method, "path": redact(request.get_full_path())}
    except Exception:
        return {"repr": redact(type(request).__name__)}


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, extras; every string redacted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", "timestamp")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__(*args or ("%(levelname)s %(name)s %(message)s",), **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        request = log_data.pop("request", None)
        if request is not None:
            log_data["request"] = _describe_request(request)
        server_time = log_data.get("server_time")
        if server_time is not None:
            log_data["server_time"] = str(server_time)
        redacted = redact_data(log_data)
        assert isinstance(redacted, dict)
        return redacted


class RedactingFormatter(logging.Formatter):
    """The plain development format, redacted after formatting (covers tracebacks too)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactSecretsFilter(logging.Filter):
    """Redacts the message (and its arguments) of every record a handler emits, whatever its formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the formatter to report
            return True
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def logging_config(*, level: str = "INFO", fmt: str = "json", stream: str = "ext://sys.stderr") -> dict[str, Any]:
    """A dictConfig with one redacted console handler; settings.LOGGING and gunicorn's config both use it."""
    if fmt not in ("json", "plain"):
        raise ValueError(f"LOG_FORMAT must be 'json' or 'plain', got {fmt!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact_secrets": {"()": "fashionsite.logging.RedactSecretsFilter"}},
        "formatters": {
            "json": {"()": "fashionsite.logging.RedactingJsonFormatter"},
            "plain": {"()": "fashionsite.logging.RedactingFormatter",
                      "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": fmt, "filters": ["redact_secrets"],
                        "stream": stream},
        },
        "root": {"handlers": ["console"], "level": level},
        # httpx logs every request URL at INFO and httpcore each connection step: noise, and URLs are data.
        "loggers": {"django.db.backends": {"level": "WARNING"}, "httpx": {"level": "WARNING"},
                    "httpcore": {"level": "WARNING"}},
    }


# --- Sentry -------------------------------------------------------------------------------------------

# Names Sentry's scrubber blanks besides its defaults (it already covers password, api_key, x_api_key, token, ...).
SENTRY_EXTRA_DENYLIST = ["x-api-key", "segmind_api_key", "fashion_ai_api_key", "aws_secret_access_key",
                         "secret_key", "access_key", "x-amz-signature", "x-amz-credential", "signature", "dsn"]


def sentry_before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Last line of defence: every string in the event (messages, exception values, breadcrumbs, query strings,
    headers) goes through the same redaction as the logs."""
    redacted = redact_data(event)
    return redacted if isinstance(redacted, dict) else None


def init_sentry(*, dsn: str, environment: str, release: str | None = None, traces_sample_rate: float = 0.0) -> None:
    """Error reporting without personal data: no IPs, cookies, user e-mails, request bodies or local variables."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + SENTRY_EXTRA_DENYLIST, recursive=True),
        before_send=sentry_before_send,  # type: ignore[arg-type]
        before_send_transaction=sentry_before_send,  # type: ignore[arg-type]
        before_breadcrumb=lambda crumb, hint: redact_data(crumb),
    )
