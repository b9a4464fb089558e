"""schemathesis fuzzes the API from its own OpenAPI 3.1 document, over the live uvicorn server: no answer may be a
server error. Real ids are given, so the edit endpoints get past their 404s."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.conftest import REPO, ApiStack, bearer, create_edit

pytestmark = pytest.mark.django_db(transaction=True)
# Generated image URLs are refused by the allow-list before any name is looked up: the fuzzer reaches no network.
# Generated `Prefer: wait=N` is parsed as always but capped at 2 s, so the run's length stays bounded.
API_STACK_ENV = {"API_IMAGE_URL_ALLOW_HOSTS": "media.example.invalid", "API_MAX_WAIT_SECONDS": "2"}


def run_schemathesis(stack: ApiStack, key: str, edit_id: str, *, max_examples: int, seed: int) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(f'[parameters]\n"path.edit_id" = "{edit_id}"\n')
    try:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("st")), "--config-file", config.name, "--no-color", "run",
             f"{stack.url}/api/v1/openapi.json", "--checks", "not_a_server_error", "-H",
             f"Authorization: Bearer {key}", "--max-examples", str(max_examples), "--seed", str(seed),
             "--request-timeout", "30", "--workers", "1"],
            capture_output=True, text=True, timeout=500, cwd=REPO, env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        os.unlink(config.name)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout


def test_openapi_document_is_3_1_and_complete(api_stack: ApiStack) -> None:
    document = requests.get(f"{api_stack.url}/api/v1/openapi.json", timeout=30).json()
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    assert {"/api/v1/edits", "/api/v1/edits/{edit_id}", "/api/v1/credits"} <= set(paths)
    create = paths["/api/v1/edits"]["post"]
    headers = {p["name"].lower() for p in create["parameters"] if p["in"] == "header"}
    assert {"idempotency-key", "prefer"} <= headers
    assert "multipart/form-data" in create["requestBody"]["content"]
    assert document["components"]["securitySchemes"]["ApiKeyAuth"]["scheme"] == "bearer"
    json.dumps(document)


def test_docs_page_works_offline(api_stack: ApiStack) -> None:
    page = requests.get(f"{api_stack.url}/api/v1/docs", timeout=30)
    assert page.status_code == 200
    for asset in ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/vendor/swagger-ui/swagger-ui.css",
                  "/static/js/api-docs.js"):
        assert asset in page.text
        assert requests.get(f"{api_stack.url}{asset}", timeout=30).status_code == 200, asset
    assert "http://" not in page.text.replace(api_stack.url, "") and "https://" not in page.text, \
        "nothing is loaded from another origin"


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_server_errors(api_stack: ApiStack, api_user: Callable[..., Any]) -> None:
    _, key = api_user(credits=1000)
    edit = create_edit(api_stack, key).json()
    for _ in range(15):  # waits are capped at 2 s here
        edit = requests.get(f"{api_stack.url}/api/v1/edits/{edit['id']}", headers={**bearer(key), "Prefer": "wait=2"},
                            timeout=30).json()
        if edit["state"] == "succeeded":
            break
    assert edit["state"] == "succeeded"
    output = run_schemathesis(api_stack, key, edit["id"], max_examples=25, seed=18)
    assert "7 selected / 7 total" in output, output[-3000:]
    assert "Server error" not in output
    assert requests.get(f"{api_stack.url}/api/v1/credits", headers=bearer(key), timeout=30).status_code == 200
