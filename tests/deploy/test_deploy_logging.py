"""JSON logs never contain API keys or secrets: the real handlers' output, captured from real processes."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devservices.servers import RedisServer
from fashionsite.logging import REDACTED, redact, redact_data
from tests.deploy.conftest import REPO, UNHASHED_STATIC_SETTINGS, http_get, production_env

# Distinct, recognisable values: any of them in the output is a leak.
SEGMIND_KEY = "SG_live_3f9c2a7b1d8e4f60a5b2"
ENGINE_KEY = "fai-engine-key-7d41c09e3b"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SMTP_PASSWORD = "smtp-pa55word-8c1e"
QUERY_KEY = "querystring-key-5e7f1a2b"
HEADER_KEY = "header-key-9b3c7d1e"


def _json_lines(output: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert records, f"no JSON log lines in:\n{output[-2000:]}"
    return records


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET /edit/?api_key=abc123def&x=1 HTTP/1.1", "abc123def"),
        ("{'x-api-key': 'k e y with spaces', 'Accept': '*/*'}", "k e y with spaces"),
        ("x-api-key: plainheadervalue", "plainheadervalue"),
        ("META HTTP_X_API_KEY=metavalue1", "metavalue1"),
        ("https://b.example/k.png?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2026&X-Amz-Signature=9f8e7d6c", "9f8e7d6c"),
        ("https://b.example/k.png?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2026", "AKIAIOSFODNN7EXAMPLE"),
        ("connecting to redis://:redispass99@redis:6379/0", "redispass99"),
        ("smtp+tls://mailer:mailpass77@smtp.example.com:587", "mailpass77"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        ('{"password": "hunter2 hunter2", "user": "bob"}', "hunter2"),
        ("aws_secret_access_key=abcdEFGH1234", "abcdEFGH1234"),
    ],
)
def test_redact_removes_secrets_in_every_usual_shape(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert REDACTED in redacted


@pytest.mark.smoke
def test_redact_leaves_ordinary_text_and_structure_alone() -> None:
    text = "job 42 SUCCEEDED in 63.8 s: 10 status calls, key photos/u1/abc.png, 3 tokens"
    assert redact(text) == text
    data = redact_data({"headers": {"X-Api-Key": "k123456", "Accept": "image/png"}, "count": 3, "ok": True})
    assert data == {"headers": {"X-Api-Key": REDACTED, "Accept": "image/png"}, "count": 3, "ok": True}


def test_logged_secrets_and_settings_never_reach_the_json_output() -> None:
    """Code that carelessly logs settings, headers, URLs and exceptions, through the production handler."""
    code = f"""
import logging, os
from django.conf import settings
log = logging.getLogger("editor.integrations.fashion_ai")
log.info("provider key is %s", settings.SEGMIND_API_KEY)
log.info("calling provider", extra={{"headers": {{"x-api-key": settings.FASHION_AI_API_KEY, "Accept": "json"}}}})
log.warning("storage secret %s and smtp password %s", os.environ["AWS_SECRET_ACCESS_KEY"], settings.EMAIL_HOST_PASSWORD)
log.info("fetching %s", "https://api.example.com/v1/fashion-ai?api_key={QUERY_KEY}")
log.info({{"event": "submit", "x_api_key": "{HEADER_KEY}", "secret_key": settings.SECRET_KEY}})
try:
    raise RuntimeError("upstream refused x-api-key: " + settings.SEGMIND_API_KEY)
except RuntimeError:
    log.exception("submit failed")
log.info("done")
"""
    env = production_env(
        SEGMIND_API_KEY=SEGMIND_KEY, FASHION_AI_API_KEY=ENGINE_KEY, FASHION_AI_BASE_URL="http://127.0.0.1:1/v1",
        AWS_SECRET_ACCESS_KEY=AWS_SECRET, EMAIL_URL=f"smtp+tls://mailer:{SMTP_PASSWORD}@smtp.example.com:587",
    )
    env.pop("AWS_STORAGE_BUCKET_NAME", None)
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for secret in (SEGMIND_KEY, ENGINE_KEY, AWS_SECRET, SMTP_PASSWORD, QUERY_KEY, HEADER_KEY,
                   env["DJANGO_SECRET_KEY"]):
        assert secret not in output, f"{secret!r} leaked:\n{output}"
    records = _json_lines(output)
    messages = [r.get("message") for r in records]
    assert "done" in messages and "submit failed" in messages  # every line made it out, as JSON
    failed = next(r for r in records if r.get("message") == "submit failed")
    assert failed["level"] == "ERROR" and "RuntimeError" in failed["exc_info"] and REDACTED in failed["exc_info"]
    assert any(r.get("headers") == {"x-api-key": REDACTED, "Accept": "json"} for r in records)


def test_requests_carrying_api_keys_leave_no_key_in_gunicorn_and_django_logs(run_gunicorn: Any,
                                                                             tmp_path: Path) -> None:
    """Header and query-string keys on real requests, through gunicorn's access log and django.request."""
    redis = RedisServer().start()
    try:
        server = run_gunicorn(production_env(REDIS_URL=redis.url, CELERY_BROKER_URL=redis.url,
                                             DJANGO_SECURE_SSL_REDIRECT="false",
                                             SEGMIND_API_KEY=SEGMIND_KEY, MEDIA_ROOT=str(tmp_path),
                                             DJANGO_SETTINGS_MODULE=UNHASHED_STATIC_SETTINGS))
        host = {"Host": "studio.example.com"}
        missing = http_get(f"{server.base_url}/no-such-page/?api_key={QUERY_KEY}&X-Amz-Signature={QUERY_KEY}",
                           headers={**host, "X-Api-Key": HEADER_KEY, "Authorization": f"Bearer {HEADER_KEY}"})
        assert missing.status == 404
        assert http_get(f"{server.base_url}/health/live/?apikey={QUERY_KEY}",
                        headers={"x-api-key": HEADER_KEY}).status == 200
        # A rejected Host is logged by django.security with the request attached.
        assert http_get(f"{server.base_url}/accounts/login/?password={QUERY_KEY}",
                        headers={"Host": "evil.example.net"}).status == 400
        output = server.stop()
    finally:
        redis.stop()
    for secret in (QUERY_KEY, HEADER_KEY, SEGMIND_KEY):
        assert secret not in output, f"{secret!r} leaked:\n{output}"
    records = _json_lines(output)
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    # The access line keeps the path and never the query string (a poll token, filters, keys sent by mistake).
    assert any('"GET /no-such-page/ HTTP/1.1" 404' in r["message"] for r in access), access
    assert not any("?" in r["message"] or "api_key" in r["message"] for r in access), access
    assert any(r["logger"] == "django.request" and r.get("status_code") == 404 for r in records)
    assert any(r["logger"].startswith("django.security") for r in records)


class _SentryIngest(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_ingest() -> Iterator[tuple[str, list[bytes]]]:
    _SentryIngest.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SentryIngest)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://public{'0' * 26}@127.0.0.1:{server.server_address[1]}/1", _SentryIngest.received
    server.shutdown()


def test_sentry_events_carry_no_keys(sentry_ingest: tuple[str, list[bytes]]) -> None:
    """sentry-sdk sends over HTTP to a local ingest endpoint; the event arrives without our secrets."""
    dsn, received = sentry_ingest
    code = f"""
import logging, sentry_sdk
from django.conf import settings
try:
    raise RuntimeError("provider said 401 for x-api-key: " + settings.SEGMIND_API_KEY)
except RuntimeError:
    logging.getLogger("editor.tasks").exception("submit failed with key %s", settings.SEGMIND_API_KEY)
sentry_sdk.set_context("request", {{"url": "https://s.example/x?api_key={QUERY_KEY}",
                                    "headers": {{"X-Api-Key": "{HEADER_KEY}"}}}})
sentry_sdk.capture_message("check " + settings.FASHION_AI_API_KEY)
sentry_sdk.flush(5)
"""
    env = production_env(SENTRY_DSN=dsn, SEGMIND_API_KEY=SEGMIND_KEY, FASHION_AI_API_KEY=ENGINE_KEY,
                         FASHION_AI_BASE_URL="http://127.0.0.1:1/v1")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    payload = b"\n".join(received).decode(errors="replace")
    assert "submit failed" in payload and "RuntimeError" in payload, payload[:2000]  # the events did arrive
    for secret in (SEGMIND_KEY, ENGINE_KEY, QUERY_KEY, HEADER_KEY, env["DJANGO_SECRET_KEY"]):
        assert secret not in payload, f"{secret!r} sent to Sentry"


def test_site_processes_log_no_httpx_request_lines() -> None:
    """httpx logs every request URL at INFO; a presigned URL is a credential, so the site turns those lines off."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/photo.png?X-Amz-Signature=deadbeefcafe"
    code = f"""
import httpx
httpx.get({url!r})
import logging
logging.getLogger("editor").info("done")
"""
    env = production_env()
    env.pop("AWS_STORAGE_BUCKET_NAME", None)
    try:
        result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "done" in output  # the handler works: INFO lines of our own reach it
    assert "HTTP Request" not in output and "photo.png" not in output, output


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass
