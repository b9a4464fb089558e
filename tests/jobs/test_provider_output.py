"""The worker does not trust the provider's output (issue 13 item 13): a real local HTTP server plays a hostile
provider's media host and serves what an attacker would: a redirect to another host, a tiny PNG that decodes to
144 Mpx, and PNG/JPEG files carrying text chunks, EXIF/GPS and HTML after the image's end."""
from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from editor import images
from editor.integrations import fashion_ai

HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


def _png_with_text_and_trailer() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret prompt and internal path /srv/provider/jobs/42")
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 160, 10)).save(out, format="PNG", pnginfo=info)
    return out.getvalue() + HTML


def _jpeg_with_gps_and_trailer() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "ProviderCam"  # Make
    exif[0x8825] = {2: (52.0, 31.0, 12.0)}  # GPS latitude
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(out, format="JPEG", exif=exif.tobytes(), comment=b"internal")
    return out.getvalue() + HTML


def _pixel_bomb() -> bytes:
    # 12000 x 12000 = 144 Mpx in a file of a few kB (the attack's was 136 kB as RGB).
    out = io.BytesIO()
    Image.new("1", (12000, 12000)).save(out, format="PNG", optimize=True)
    return out.getvalue()


class Host:
    """One real HTTP server; `routes` maps a path to (status, headers, body); `hits` counts requests."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                host.hits.append(self.path)
                status, headers, body = host.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def image(self, path: str, body: bytes, content_type: str = "image/png") -> str:
        self.routes[path] = (200, {"Content-Type": content_type}, body)
        return self.url(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[Host]:
    host = Host()
    yield host
    host.close()


@pytest.fixture
def elsewhere() -> Iterator[Host]:
    host = Host()
    yield host
    host.close()


def test_a_redirect_to_another_host_is_not_followed(provider: Host, elsewhere: Host) -> None:
    elsewhere.image("/internal.png", _png_with_text_and_trailer())
    provider.routes["/out.png"] = (302, {"Location": elsewhere.url("/internal.png")}, b"")
    # Same machine, other port: another host as far as the worker is concerned.
    with pytest.raises(fashion_ai.DownloadError, match="another host") as refused:
        fashion_ai.download_output(provider.url("/out.png"))
    assert not refused.value.retryable
    assert elsewhere.hits == []
    # A different name for the same address is another host too.
    provider.routes["/by-name.png"] = (302, {"Location": provider.url("/ok.png", host="localhost")}, b"")
    with pytest.raises(fashion_ai.DownloadError, match="another host"):
        fashion_ai.download_output(provider.url("/by-name.png"))


def test_a_redirect_on_the_same_host_still_works(provider: Host) -> None:
    provider.image("/ok.png", _png_with_text_and_trailer())
    provider.routes["/out.png"] = (302, {"Location": "/ok.png"}, b"")
    downloaded = fashion_ai.download_output(provider.url("/out.png"))
    assert downloaded.image.size == (64, 48)
    assert provider.hits == ["/out.png", "/ok.png"]


def test_a_pixel_bomb_is_refused_before_it_is_decoded(provider: Host) -> None:
    bomb = _pixel_bomb()
    assert len(bomb) < 136_000
    with pytest.raises(fashion_ai.DownloadError, match="too many pixels"):
        fashion_ai.download_output(provider.image("/bomb.png", bomb))


@pytest.mark.parametrize(
    ("body", "content_type", "extension"),
    [(_png_with_text_and_trailer(), "image/png", ".png"), (_jpeg_with_gps_and_trailer(), "image/jpeg", ".jpg")],
    ids=["png-text-chunk-and-html", "jpeg-gps-and-html"],
)
def test_what_we_store_is_re_encoded_from_pixels(
    provider: Host, body: bytes, content_type: str, extension: str
) -> None:
    downloaded = fashion_ai.download_output(provider.image("/out", body, content_type))
    stored, got = images.clean_result(downloaded.image)
    assert got == extension
    for leak in (b"<html", b"script", b"secret prompt", b"/srv/provider", b"ProviderCam", b"internal"):
        assert leak not in stored
    result = Image.open(io.BytesIO(stored))
    result.load()
    assert result.size == (64, 48) and not result.getexif() and not result.info.get("Comment")
    assert "comment" not in result.info and "exif" not in result.info
