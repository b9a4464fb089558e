"""The service's HTTP API against the real engine, over real HTTP (one subprocess for the module)."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageFilter
from segmind import InferenceFailed, SegmindClient
from segmind.exceptions import SegmindError
from skimage import data

from devservices.fashionai import FashionAIServer

PROMPT = "a person wearing a red shirt"


def _client(server: FashionAIServer, key: str | None = None) -> httpx.Client:
    headers = {"x-api-key": key if key is not None else server.api_key}
    return httpx.Client(base_url=server.root_url, headers=headers, timeout=30)


def _wait_terminal(client: httpx.Client, status_url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(status_url)
        if response.json().get("status") in ("COMPLETED", "FAILED"):
            return response
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def _png(content: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(content))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def test_health_and_openapi(service: FashionAIServer) -> None:
    health = httpx.get(f"{service.root_url}/health")
    assert health.status_code == 200
    assert health.json()["engine"] == "recolor"
    spec = httpx.get(f"{service.root_url}/openapi.json").json()
    for path in (
        "/v2/{slug}",
        "/v1/{slug}",
        "/v2/requests/{request_id}/status",
        "/v2/requests/{request_id}",
        "/v1/requests/{request_id}",
        "/v2/fashion-ai/preview",
    ):
        assert path in spec["paths"], path
    assert "image" in str(spec["paths"]["/v2/{slug}"]["post"]["requestBody"])


def test_async_submit_status_result_and_output(service: FashionAIServer, astronaut_b64: str) -> None:
    with _client(service) as client:
        submitted = client.post(
            "/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT, "clothing": "topwear"}
        )
        assert submitted.status_code == 200, submitted.text
        body = submitted.json()
        request_id = body["request_id"]
        assert body["status"] == "QUEUED"
        assert body["status_url"] == f"{service.root_url}/v2/requests/{request_id}/status"
        assert body["response_url"] == f"{service.root_url}/v2/requests/{request_id}"
        assert body["poll_url"].startswith("http://")
        assert submitted.headers["x-cost"] == "1"

        early = client.get(body["status_url"]).json()
        assert early["status"] in ("QUEUED", "PROCESSING", "COMPLETED")
        assert early["request_id"] == request_id

        status = _wait_terminal(client, body["status_url"])
        assert status.status_code == 200
        assert set(status.json()) >= {"status", "request_id", "status_url", "response_url", "metrics"}

        result = client.get(body["response_url"])
        assert result.status_code == 200
        result_body: dict[str, Any] = result.json()
        assert result_body["status"] == "COMPLETED"
        assert result_body["error"] is None
        # Real compute seconds of the engine, not wall-clock queueing.
        assert 0.01 < result_body["metrics"]["inference_time"] < 10
        assert "type or shape" in result_body["edit"]["limitations"]
        assert result_body["edit"]["colours"] == ["red"]

        # Backward-compatible v1 poll answers the same body.
        assert client.get(f"/v1/requests/{request_id}").json() == result_body

        output_url = result_body["output"]
        assert output_url.startswith(f"{service.root_url}/")
    # The output URL needs no API key (like a presigned link): fetch it with a bare client.
    image = httpx.get(output_url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert _png(image.content).shape == (512, 512, 3)


def test_sync_v1_returns_the_image(service: FashionAIServer, astronaut_b64: str) -> None:
    with _client(service) as client:
        response = client.post("/v1/fashion-ai", json={"image": astronaut_b64, "prompt": "a navy striped shirt"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-request-id"]
    assert float(response.headers["x-inference-time"]) > 0
    assert _png(response.content).shape == (512, 512, 3)


def test_image_as_data_uri(service: FashionAIServer, astronaut_b64: str) -> None:
    with _client(service) as client:
        response = client.post(
            "/v1/fashion-ai", json={"image": f"data:image/jpeg;base64,{astronaut_b64}", "prompt": "blue jeans"}
        )
    assert response.status_code == 200, response.text


def test_official_sdk_round_trip(service: FashionAIServer, astronaut_b64: str) -> None:
    client = SegmindClient(api_key=service.api_key, base_url=service.base_url)
    result = client.run("fashion-ai", image=astronaut_b64, prompt=PROMPT, clothing="topwear")
    assert result["status"] == "COMPLETED"
    assert result["output"].startswith(service.root_url)
    assert result["metrics"]["inference_time"] > 0

    job = client.submit_async("fashion-ai", image=astronaut_b64, prompt="light green checked shirt")
    assert job.status()["status"] in ("QUEUED", "PROCESSING", "COMPLETED")
    assert job.wait(timeout=30, interval=0.1)["status"] == "COMPLETED"
    assert job.result()["edit"]["pattern"] == "checks"


def test_official_sdk_raises_inference_failed(service: FashionAIServer, astronaut_b64: str) -> None:
    client = SegmindClient(api_key=service.api_key, base_url=service.base_url)
    # The astronaut photo ends at the waist: there are no trousers to recolour.
    job = client.submit_async("fashion-ai", image=astronaut_b64, prompt="black trousers", clothing="bottomwear")
    with pytest.raises(InferenceFailed) as failure:
        job.wait(timeout=30, interval=0.1)
    assert "not visible" in (failure.value.detail or "")
    assert job.result()["status"] == "FAILED"


def test_failed_job_is_422_on_status_and_result(service: FashionAIServer, cat_b64: str) -> None:
    with _client(service) as client:
        body = client.post("/v2/fashion-ai", json={"image": cat_b64, "prompt": PROMPT}).json()
        status = _wait_terminal(client, body["status_url"])
        assert status.status_code == 422
        assert status.json()["status"] == "FAILED"
        assert "No person found" in status.json()["error"]
        result = client.get(body["response_url"])
        assert result.status_code == 422
        assert result.json()["status"] == "FAILED"
        assert result.json()["output"] is None
        # Sync v1 reports the same failure.
        sync = client.post("/v1/fashion-ai", json={"image": cat_b64, "prompt": PROMPT})
        assert sync.status_code == 422
        assert "No person found" in sync.json()["error"]


def test_prompt_with_nothing_to_apply_fails(service: FashionAIServer, astronaut_b64: str) -> None:
    with _client(service) as client:
        sync = client.post("/v1/fashion-ai", json={"image": astronaut_b64, "prompt": "make it look fancier"})
    assert sync.status_code == 422
    assert "names no colour" in sync.json()["error"]


@pytest.mark.parametrize("path", ["/v2/requests/{id}/status", "/v2/requests/{id}", "/v1/requests/{id}"])
def test_unknown_request_is_404(service: FashionAIServer, path: str) -> None:
    with _client(service) as client:
        response = client.get(path.format(id="0000-unknown"))
    assert response.status_code == 404
    assert response.json() == {"error": "Request 0000-unknown not found"}


def test_unknown_model_is_404(service: FashionAIServer, astronaut_b64: str) -> None:
    with _client(service) as client:
        response = client.post("/v2/sdxl", json={"image": astronaut_b64, "prompt": PROMPT})
    assert response.status_code == 404
    assert "not found" in response.json()["error"]


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
def test_auth_is_required_everywhere(service: FashionAIServer, astronaut_b64: str, key: str | None) -> None:
    headers = {} if key is None else {"x-api-key": key}
    with httpx.Client(base_url=service.root_url, headers=headers) as client:
        calls = [
            client.post("/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT}),
            client.post("/v1/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT}),
            client.get("/v2/requests/x/status"),
            client.get("/v2/requests/x"),
            client.get("/v1/requests/x"),
        ]
    for response in calls:
        assert response.status_code == 401, response.request.url
        assert "API key" in response.json()["error"]


def test_sdk_surfaces_401(service: FashionAIServer, astronaut_b64: str) -> None:
    client = SegmindClient(api_key="nope", base_url=service.base_url)
    with pytest.raises(SegmindError) as error:
        client.submit_async("fashion-ai", image=astronaut_b64, prompt=PROMPT)
    assert error.value.status == 401


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "JSON object"),
        ([1, 2], "JSON object"),
        ({"prompt": PROMPT}, "image is required"),
        ({"image": "", "prompt": PROMPT}, "image is required"),
        ({"image": "AAAA", "prompt": ""}, "prompt is required"),
        ({"image": "AAAA"}, "prompt is required"),
        ({"image": "AAAA", "prompt": PROMPT, "clothing": "shoes"}, "clothing must be one of"),
        ({"image": "not base64 at all!", "prompt": PROMPT}, "http(s) URL, a data: URI or base64"),
        ({"image": base64.b64encode(b"hello world").decode(), "prompt": PROMPT}, "could not be decoded"),
        ({"image": "data:image/png,rawbytes", "prompt": PROMPT}, "base64 encoded"),
        ({"image": "ftp://example.invalid/a.png", "prompt": PROMPT}, "http(s) URL"),
    ],
)
def test_bad_params_are_400(service: FashionAIServer, payload: Any, message: str) -> None:
    with _client(service) as client:
        response = client.post("/v2/fashion-ai", json=payload)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_non_json_body_is_400(service: FashionAIServer) -> None:
    with _client(service) as client:
        response = client.post("/v2/fashion-ai", content=b"\x89PNG not json")
    assert response.status_code == 400
    assert response.json()["error"] == "Request body must be JSON"


def test_body_too_large_is_400(service: FashionAIServer) -> None:
    with _client(service) as client:
        response = client.post("/v2/fashion-ai", json={"image": "A" * 3_200_000, "prompt": PROMPT})
    assert response.status_code == 400
    assert "too large" in response.json()["error"]


def test_image_url_is_fetched_and_redirects_followed(service: FashionAIServer, image_host: str) -> None:
    with _client(service) as client:
        for url in (f"{image_host}/astronaut.jpg", f"{image_host}/redirect"):
            response = client.post("/v1/fashion-ai", json={"image": url, "prompt": PROMPT})
            assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/missing.jpg", "answered HTTP 404"),
        ("/big.jpg", "larger than 2000000 bytes"),
        ("/slow.jpg", "no complete answer within 1.5 s"),
    ],
)
def test_bad_image_urls_get_one_generic_error(
    service: FashionAIServer, image_host: str, path: str, reason: str
) -> None:
    """The caller learns only that the URL could not be fetched (no map of ports and paths); the log says why."""
    started = time.monotonic()
    with _client(service) as client:
        response = client.post("/v2/fashion-ai", json={"image": image_host + path, "prompt": PROMPT})
    assert response.status_code == 400
    assert response.json() == {"error": "image URL could not be fetched"}
    assert time.monotonic() - started < 4  # the fetch timeout (1.5 s here) bounds a slow host
    assert f"input not fetched from {image_host}{path}: {reason}" in service.log()


def test_fetched_bytes_that_are_no_image_are_400(service: FashionAIServer, image_host: str) -> None:
    with _client(service) as client:
        response = client.post("/v2/fashion-ai", json={"image": f"{image_host}/text", "prompt": PROMPT})
    assert response.status_code == 400
    assert "could not be decoded" in response.json()["error"]


def test_presigned_input_urls_are_logged_without_query_or_userinfo(service: FashionAIServer, image_host: str) -> None:
    signature = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101%2Fus-east-1%2Fs3"
        f"%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=1800&X-Amz-SignedHeaders=host"
        f"&X-Amz-Signature={signature}"
    )
    host = image_host.removeprefix("http://")
    with _client(service) as client:
        fetched = client.post("/v1/fashion-ai", json={"image": f"{image_host}/astronaut.jpg?{query}", "prompt": PROMPT})
        missing = client.post("/v2/fashion-ai", json={"image": f"{image_host}/gone.jpg?{query}", "prompt": PROMPT})
        with_password = client.post(
            "/v2/fashion-ai", json={"image": f"http://admin:hunter2pw@{host}/astronaut.jpg?{query}", "prompt": PROMPT}
        )
    assert fetched.status_code == 200, fetched.text
    assert missing.status_code == 400 and with_password.status_code == 400
    log = service.log()
    # The downloads and refusals are logged (so the check below is not vacuous), with scheme, host and path only.
    assert f"input fetched from {image_host}/astronaut.jpg?[REDACTED]" in log
    assert f"input not fetched from {image_host}/gone.jpg?[REDACTED]: answered HTTP 404" in log
    assert f"input not fetched from http://[REDACTED]@{host}/astronaut.jpg?[REDACTED]" in log
    for secret in (signature, "AKIAIOSFODNN7EXAMPLE", "X-Amz-", "hunter2pw"):
        assert secret not in log, secret


@pytest.mark.parametrize("path", ["/v2/requests/{id}/status", "/v2/requests/{id}", "/v1/requests/{id}"])
def test_another_keys_request_is_404(service: FashionAIServer, astronaut_b64: str, path: str) -> None:
    with _client(service) as owner:
        submitted = owner.post("/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT})
        assert submitted.status_code == 200
        request_id = submitted.json()["request_id"]
        _wait_terminal(owner, submitted.json()["status_url"])
        assert owner.get(path.format(id=request_id)).status_code == 200
    with _client(service, key="other-key") as stranger:
        response = stranger.get(path.format(id=request_id))
    # Exactly what an unknown id answers: nothing tells the stranger that the id exists.
    assert response.status_code == 404
    assert response.json() == {"error": f"Request {request_id} not found"}


def test_credits_run_out_with_406(service: FashionAIServer, astronaut_b64: str) -> None:
    with _client(service, key="poor") as client:
        first = client.post("/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT})
        assert first.status_code == 200
        assert first.headers["x-remaining-credits"] == "0"
        second = client.post("/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT})
        assert second.status_code == 406
        assert "credits" in second.json()["error"]


# ------------------------------------------------------------------------------------------ the free preview (ours)


def _mask(data_uri: str) -> np.ndarray:
    header, _, payload = data_uri.partition(",")
    assert header == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("L")) > 127


def test_preview_answers_with_the_mask_the_edit_then_uses(service: FashionAIServer, astronaut_b64: str) -> None:
    """Our extension: the region and the gate's verdict, free. The edit of the same photo changes exactly that
    region (same digest; changed pixels inside it, none beyond a few pixels of feather)."""
    with _client(service, "poor") as poor:
        # The `poor` key has one credit (other tests may have spent it): a preview needs none.
        for _ in range(2):
            answer = poor.post(
                "/v2/fashion-ai/preview", json={"image": astronaut_b64, "prompt": PROMPT, "clothing": "topwear"}
            )
            assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "x-cost" not in answer.headers
    assert body["extension"] == "fashionai-preview" and body["verdict"]["ok"] is True
    assert body["inference_time"] > 0  # its speed is bench/bench_engine_quality.py's business
    mask = _mask(body["mask"])
    assert mask.shape == (512, 512) and 0.1 < mask.mean() < 0.5
    with _client(service) as client:
        submitted = client.post("/v2/fashion-ai", json={"image": astronaut_b64, "prompt": PROMPT})
        done = _wait_terminal(client, submitted.json()["status_url"])
        result = client.get(done.json()["response_url"]).json()
        output = _png(client.get(result["output"]).content)
    assert result["edit"]["mask_digest"] == body["mask_digest"]
    original = np.asarray(Image.open(io.BytesIO(base64.b64decode(astronaut_b64))).convert("RGB"))
    changed = np.abs(output.astype(int) - original.astype(int)).max(axis=2) > 12  # JPEG input: ignore its noise
    assert changed[mask].mean() > 0.95
    grown = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(11))) > 0
    assert not changed[~grown].any()


def test_preview_warns_before_a_refusal(service: FashionAIServer, cat_b64: str) -> None:
    camera = np.stack([data.camera()] * 3, axis=-1)
    buf = io.BytesIO()
    Image.fromarray(camera).save(buf, format="PNG")
    with _client(service) as client:
        coat = client.post(
            "/v2/fashion-ai/preview",
            json={"image": base64.b64encode(buf.getvalue()).decode(), "clothing": "bottomwear"},
        ).json()
        cat = client.post("/v2/fashion-ai/preview", json={"image": cat_b64}).json()
        no_key = httpx.post(f"{service.root_url}/v2/fashion-ai/preview", json={"image": cat_b64})
        empty = client.post("/v2/fashion-ai/preview", json={"clothing": "topwear"})
    assert coat["verdict"]["ok"] is False and coat["verdict"]["code"] == "covered_by_long_top"
    assert "long coat" in coat["verdict"]["message"]
    assert cat["verdict"]["code"] == "no_person" and not _mask(cat["mask"]).any()
    assert no_key.status_code == 401
    assert empty.status_code == 400
