"""Logged-in HTTP clients for a SiteServer: a real sign-in through allauth's form, then the form's CSRF token."""
from __future__ import annotations

import re

import requests

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token(session: requests.Session, url: str) -> str:
    response = session.get(url, timeout=60)
    assert response.status_code == 200, (url, response.status_code)
    match = TOKEN.search(response.text)
    assert match, f"no CSRF token on {url}"
    return match[1]


def signed_in(base_url: str, email: str, password: str) -> requests.Session:
    session = requests.Session()
    token = csrf_token(session, f"{base_url}/accounts/login/")
    response = session.post(f"{base_url}/accounts/login/", data={
        "login": email, "password": password, "csrfmiddlewaretoken": token,
    }, allow_redirects=False, timeout=60)
    assert response.status_code == 302, (response.status_code, response.text[:500])
    return session
