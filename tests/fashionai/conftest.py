"""Fixtures for the self-hosted Fashion AI service tests: real photos, real service subprocesses, a real image host."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from skimage import data

from devservices.fashionai import FashionAIServer, run_fashionai


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """512x512 RGB photo of a person (upper body), shipped with scikit-image."""
    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut: np.ndarray) -> bytes:
    return _jpeg(astronaut)


@pytest.fixture(scope="session")
def astronaut_b64(astronaut_jpeg: bytes) -> str:
    return base64.b64encode(astronaut_jpeg).decode()


@pytest.fixture(scope="session")
def cat_b64() -> str:
    """A photo with no person in it."""
    return base64.b64encode(_jpeg(data.chelsea())).decode()


class _ImageHost(BaseHTTPRequestHandler):
    """Serves the test photo and some misbehaving URLs on loopback."""

    payload = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's API)
        path = urlsplit(self.path).path  # presigned-style query strings are ignored, as S3 would after checking
        if path == "/astronaut.jpg":
            self._send(200, self.payload, "image/jpeg")
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/astronaut.jpg")
            self.end_headers()
        elif path == "/big.jpg":
            self._send(200, b"\xff" * 3_000_000, "image/jpeg")
        elif path == "/slow.jpg":
            time.sleep(4)
            self._send(200, self.payload, "image/jpeg")
        elif path == "/text":
            self._send(200, b"this is not an image", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service gave up on a slow or too-large download: that's what the test wants

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def image_host(astronaut_jpeg: bytes) -> Iterator[str]:
    _ImageHost.payload = astronaut_jpeg
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHost)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def service(image_host: str) -> Iterator[FashionAIServer]:
    """The real engine, two workers. Key `poor` has a single credit; `other` is a second customer. The loopback
    image host is allowed explicitly (internal addresses are refused otherwise)."""
    with run_fashionai(
        engine="recolor",
        workers=2,
        api_keys="test-key,poor:1,other-key",
        env={
            "FASHIONAI_FETCH_ALLOW_INTERNAL": image_host.removeprefix("http://"),
            "FASHIONAI_FETCH_TIMEOUT": "1.5",
            "FASHIONAI_MAX_IMAGE_BYTES": "2000000",
            "FASHIONAI_MAX_BODY_BYTES": "3000000",
        },
    ) as server:
        yield server
