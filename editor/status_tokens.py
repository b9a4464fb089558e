"""The live panel's poll token: lets the every-second status poll answer "unchanged" without loading the session.

A signed-in poll costs a session read, a user query and the job query; at 200 people watching their edits that is
most of what two cores can serve (docs/performance.md). The job page is rendered for its owner only, so it hands
the panel a token signed with the site's key naming the edit, its owner and a digest of the session cookie it was
issued to. A poll carrying a valid token for the cookie it arrives with is answered from one owner-scoped query of
the job's phase: 204 while the phase is the one shown. Anything else (a phase change, no token, a token for
another session or edit, an expired one) takes the full, session-checked path. A stolen token without its session
cookie is worthless; with the cookie it tells no more than the session itself does.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from django.core import signing

# A job page left open longer than this falls back to the full poll (a few ms more) until it is reloaded.
TOKEN_MAX_AGE_SECONDS = 6 * 3600
_SALT = "editor.status-poll"


@dataclass(frozen=True)
class PollGrant:
    job_id: uuid.UUID
    owner_id: int


def _cookie_digest(session_cookie: str) -> str:
    return hashlib.sha256(session_cookie.encode()).hexdigest()[:24]


def status_token_issue(*, job_id: uuid.UUID, owner_id: int, session_cookie: str) -> str:
    return signing.dumps([str(job_id), owner_id, _cookie_digest(session_cookie)], salt=_SALT, compress=False)


def status_token_check(*, token: str, job_id: uuid.UUID, session_cookie: str) -> PollGrant | None:
    """The grant a token gives for this edit and session cookie, or None (forged, expired, another edit/session)."""
    if not token or not session_cookie:
        return None
    try:
        payload = signing.loads(token, salt=_SALT, max_age=TOKEN_MAX_AGE_SECONDS)
        token_job, owner_id, digest = payload
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if token_job != str(job_id) or not isinstance(owner_id, int) or digest != _cookie_digest(session_cookie):
        return None
    return PollGrant(job_id=job_id, owner_id=owner_id)
