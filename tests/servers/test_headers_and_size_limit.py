"""Under both servers the project runs: a body over the upload limit gets the 413 page (not a 500), and every kind
of answer (a page, the 413, the health probes, a static file, a 404) carries the security headers."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from django.conf import settings

from editor.middleware import FORM_OVERHEAD_BYTES
from tests.servers.conftest import SiteServer, start_site_server

SERVERS = ["runserver", "gunicorn"]


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[SiteServer]:
    # One server per kind for the module: starting one is the slow part.
    with start_site_server(request.param, request.getfixturevalue("migrated_sqlite")) as running:
        yield running


def oversized_post(server: SiteServer) -> requests.Response:
    # A real body a little over the limit, sent whole (as a browser does), to the form's own URL.
    size = settings.UPLOAD_MAX_BYTES + FORM_OVERHEAD_BYTES + 1024 * 1024
    return requests.post(f"{server.url}/edit/new/", data=b"x" * size, timeout=60,
                         headers={"Content-Type": "multipart/form-data; boundary=zz"})


def test_a_body_over_the_upload_limit_gets_the_413_page(server: SiteServer) -> None:
    response = oversized_post(server)
    assert response.status_code == 413, (response.status_code, server.log()[-3000:])
    assert "That file is too big. Photos can be at most 15 MB." in response.text
    assert "Internal Server Error" not in server.log()
    # The server is still serving after it (no wedged connection or thread).
    assert requests.get(f"{server.url}/health/live/", timeout=30).status_code == 200


def _answers(server: SiteServer) -> dict[str, requests.Response]:
    def get(path: str) -> requests.Response:
        return requests.get(f"{server.url}{path}", timeout=60, allow_redirects=False)

    return {
        "page": get("/accounts/login/"),
        "413": oversized_post(server),
        "health": get("/health/"),
        "health live": get("/health/live/"),
        "health ready": get("/health/ready/"),
        "static file": get("/static/css/app.css"),
        "404": get("/no-such-page/"),
    }


def test_every_answer_carries_the_security_headers(server: SiteServer) -> None:
    answers = _answers(server)
    assert {name: r.status_code for name, r in answers.items()} == {
        "page": 200, "413": 413, "health": 200, "health live": 200, "health ready": 200, "static file": 200,
        "404": 404,
    }
    for name, response in answers.items():
        headers = response.headers
        rules = headers.get("Permissions-Policy", "").split(", ")
        policy = dict(rule.split("=", 1) for rule in rules if "=" in rule)
        for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
            assert policy.get(feature) == "()", (name, headers.get("Permissions-Policy"))
        assert headers.get("X-Content-Type-Options") == "nosniff", name
        assert headers.get("X-Frame-Options") == "DENY", name
        assert headers.get("Referrer-Policy") == "same-origin", name
        assert headers.get("Cross-Origin-Opener-Policy") == "same-origin", name
        if name != "404":  # with DEBUG (as `make run`) django-csp leaves Django's technical 404 page alone
            assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), name
