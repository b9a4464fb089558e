"""The worker does not trust the provider's output (issue 13 item 13): a real local HTTP server plays a hostile
provider's media host and serves what an attacker would: a redirect to another host, a tiny PNG that decodes to
144 Mpx, and PNG/JPEG files carrying text chunks, EXIF/GPS and HTML after the image's end."""
from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone
from PIL import Image, PngImagePlugin

from editor import images, storage
from editor.integrations import fashion_ai
from editor.models import CreditEntry, EditJob
from editor.services.edit_commands import edit_job_submit
from editor.services.job_steps import edit_job_run_finish, edit_job_run_poll, edit_job_run_submit

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

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

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


# --- The whole worker path: our job steps against a hostile provider speaking Segmind's protocol ----------------


def _hostile_provider(host: Host, output_url: str) -> None:
    base = host.url("/v2/requests/r1")
    submitted = {"request_id": "r1", "status_url": f"{base}/status", "response_url": base}
    host.routes["/v2/fashion-ai"] = (200, {"Content-Type": "application/json"}, json.dumps(submitted).encode())
    host.routes["/v2/requests/r1/status"] = (
        200, {"Content-Type": "application/json"}, json.dumps({"status": "COMPLETED"}).encode()
    )
    result = {"status": "COMPLETED", "output": output_url, "metrics": {}}
    host.routes["/v2/requests/r1"] = (200, {"Content-Type": "application/json"}, json.dumps(result).encode())


def _run_job(user: Any, photo: Any) -> EditJob:
    job = edit_job_submit(user=user, photo=photo, prompt="a person wearing a red shirt", clothing="topwear")
    edit_job_run_submit(job_id=str(job.pk))
    # The first poll is scheduled a moment later; the step runs now, as a worker's countdown would later.
    EditJob.objects.filter(pk=job.pk).update(next_poll_at=timezone.now())
    assert edit_job_run_poll(job_id=str(job.pk)).task == "finish"  # sees COMPLETED: the finish step follows
    edit_job_run_finish(job_id=str(job.pk))
    return EditJob.objects.get(pk=job.pk)


@pytest.fixture
def hostile_settings(settings: Any, provider: Host) -> Any:
    settings.FASHION_AI_BASE_URL = provider.url("/v1")
    settings.FASHION_AI_API_KEY = "any"
    fashion_ai.reset_client()
    yield settings
    fashion_ai.reset_client()


@pytest.mark.django_db
def test_the_worker_fails_an_edit_whose_output_leaves_the_provider_host(
    hostile_settings: Any, provider: Host, elsewhere: Host, funded_user: Any, make_photo: Any
) -> None:
    user = funded_user(2)
    elsewhere.image("/internal.png", _png_with_text_and_trailer())
    provider.routes["/out.png"] = (302, {"Location": elsewhere.url("/internal.png")}, b"")
    _hostile_provider(provider, provider.url("/out.png"))
    job = _run_job(user, make_photo(user))
    assert job.state == EditJob.State.FAILED and "another host" in job.error_detail
    assert elsewhere.hits == [] and not job.result_image
    assert CreditEntry.objects.filter(job=job, kind="refund").count() == 1


@pytest.mark.django_db
def test_the_worker_refuses_a_pixel_bomb_and_stores_clean_pixels_only(
    hostile_settings: Any, provider: Host, funded_user: Any, make_photo: Any
) -> None:
    user = funded_user(2)
    _hostile_provider(provider, provider.image("/bomb.png", _pixel_bomb()))
    bombed = _run_job(user, make_photo(user))
    assert bombed.state == EditJob.State.FAILED and "too many pixels" in bombed.error_detail
    assert not any(storage.exists(key) for key in storage.job_file_keys(user.pk, bombed.pk))

    _hostile_provider(provider, provider.image("/dirty.png", _png_with_text_and_trailer()))
    job = _run_job(user, make_photo(user))
    assert job.state == EditJob.State.SUCCEEDED, job.error_detail
    stored = storage.read(job.result_image.name)
    assert b"<html" not in stored and b"secret prompt" not in stored and b"tEXt" not in stored
    assert Image.open(io.BytesIO(stored)).size == (64, 48)
