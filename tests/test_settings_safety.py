"""The content-safety and provenance settings are read strictly at start-up, like every other setting."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.c2pa_keys import make_signing_chain
from tests.test_settings import _start_up

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"C2PA_SIGNING_KEY_FILE": "/etc/hostname"}, "C2PA_SIGNING_KEY_FILE and C2PA_SIGNING_CERTS_FILE go together"),
        ({"C2PA_SIGNING_KEY_FILE": "/nonexistent/key.pem", "C2PA_SIGNING_CERTS_FILE": "/etc/hostname"},
         "C2PA_SIGNING_KEY_FILE='/nonexistent/key.pem' is not a readable file"),
        ({"C2PA_TRUST_ANCHORS_FILE": "/nonexistent/ca.pem"}, "C2PA_TRUST_ANCHORS_FILE='/nonexistent/ca.pem' is not"),
        ({"UPLOAD_SCREENING_BLOCK": "FACE_FEMALE,NAKED"}, "(NAKED unknown)"),
        ({"UPLOAD_SCREENING_THRESHOLD": "0.1"}, "UPLOAD_SCREENING_THRESHOLD must be a number, between 0.2 and 1"),
        ({"RESULT_AI_MARK": "maybe"}, "RESULT_AI_MARK must be true or false"),
    ],
)
def test_bad_values_stop_start_up(env: dict[str, str], message: str) -> None:
    result = _start_up(**env)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]


def test_a_signing_chain_starts(tmp_path: Path) -> None:
    chain = make_signing_chain(tmp_path)
    result = _start_up(**chain.env(), C2PA_TRUST_ANCHORS_FILE=str(chain.anchors_file), RESULT_AI_MARK="true",
                       UPLOAD_SCREENING="true", UPLOAD_SCREENING_BLOCK="face_female")
    assert result.returncode == 0 and "started" in result.stdout, result.stderr[-2000:]
