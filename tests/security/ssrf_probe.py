"""SSRF probe for the Fashion AI service, run by test_fashionai_attacks.py inside a private network namespace.

Why a namespace: a redirect from an *allowed, public* host to an internal one can only be tested with a public
address that answers. `unshare --net` gives this process its own loopback, where we add a public address
(PUBLIC_IP) and the "internal" targets (10.0.0.1, 169.254.169.254) as real listening addresses. Nothing leaves the
namespace. One HTTP server (dual-stack, every address) plays the image host, the redirector and the metadata
endpoint, and records which local address each request reached, so the test can prove that no internal address
was ever contacted. Prints one JSON document on stdout.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from devservices.fashionai import run_fashionai  # noqa: E402

PUBLIC_IP = "93.184.216.34"  # any globally routable address: inside the namespace it is ours
INTERNAL_IPS = ("10.0.0.1", "169.254.169.254")
HITS: list[tuple[str, str]] = []


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's API)
        local = ipaddress.ip_address(self.connection.getsockname()[0].split("%")[0])
        if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped:
            local = local.ipv4_mapped
        HITS.append((str(local), self.path))
        parts = urlsplit(self.path)
        if parts.path == "/to":  # /to?url=X[&code=307]: a redirect to anywhere
            query = parse_qs(parts.query)
            self.send_response(int(query.get("code", ["302"])[0]))
            self.send_header("Location", query["url"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = PNG if parts.path.endswith(".png") else b'{"secret": "instance-credentials"}'
        self.send_response(200)
        self.send_header("Content-Type", "image/png" if body is PNG else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def _setup_network() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in (PUBLIC_IP, *INTERNAL_IPS):
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)


def _submit(server_url: str, key: str, image: str) -> dict[str, object]:
    response = httpx.post(
        f"{server_url}/v2/fashion-ai",
        json={"image": image, "prompt": "a red shirt"},
        headers={"x-api-key": key},
        timeout=30,
    )
    try:
        error = response.json().get("error")
    except ValueError:
        error = response.text[:200]
    return {"image": image, "status": response.status_code, "error": error}


def main() -> None:
    _setup_network()
    http = DualStackServer(("::", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    port = http.server_address[1]
    public = f"http://{PUBLIC_IP}:{port}"

    internal = [
        f"http://127.0.0.1:{port}/photo.png",
        f"http://localhost:{port}/photo.png",
        f"http://LOCALHOST.:{port}/photo.png",
        f"http://127.1:{port}/photo.png",
        f"http://2130706433:{port}/photo.png",  # decimal 127.0.0.1
        f"http://0x7f000001:{port}/photo.png",  # hex
        f"http://0177.0.0.1:{port}/photo.png",  # octal
        f"http://0.0.0.0:{port}/photo.png",
        f"http://0:{port}/photo.png",
        f"http://10.0.0.1:{port}/photo.png",
        f"http://192.168.1.1:{port}/photo.png",
        f"http://172.16.0.1:{port}/photo.png",
        f"http://100.64.0.1:{port}/photo.png",  # carrier-grade NAT
        f"http://169.254.169.254:{port}/latest/meta-data/iam/security-credentials/",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{port}/photo.png",
        f"http://[::ffff:127.0.0.1]:{port}/photo.png",
        f"http://[::ffff:a9fe:a9fe]:{port}/latest/meta-data/",  # 169.254.169.254, IPv4-mapped
        f"http://[fe80::1]:{port}/photo.png",
        f"http://[fd00::1]:{port}/photo.png",
        f"http://{PUBLIC_IP}@127.0.0.1:{port}/photo.png",  # userinfo trick: the host is 127.0.0.1
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{port}/_GET%20/",
        f"ftp://{PUBLIC_IP}/photo.png",
    ]
    redirects = [
        f"{public}/to?url=http://127.0.0.1:{port}/photo.png",
        f"{public}/to?url=http://localhost:{port}/photo.png&code=301",
        f"{public}/to?url=http://169.254.169.254:{port}/latest/meta-data/&code=307",
        f"{public}/to?url=http://10.0.0.1:{port}/photo.png&code=308",
        f"{public}/to?url=http://[::1]:{port}/photo.png",
        f"{public}/to?url=http://2130706433:{port}/photo.png",
        f"{public}/to?url=file:///etc/passwd",
        # two hops: public -> public -> internal
        f"{public}/to?url={public}/to%3Furl%3Dhttp://127.0.0.1:{port}/photo.png",
    ]
    report: dict[str, object] = {"port": port, "public_ip": PUBLIC_IP, "internal_ips": list(INTERNAL_IPS)}

    # 1. Without the allow-list the hole is real: the service fetches loopback and the "metadata" address.
    HITS.clear()
    with run_fashionai() as server:
        report["open"] = [
            _submit(server.root_url, server.api_key, url)
            for url in (f"http://127.0.0.1:{port}/photo.png", f"http://169.254.169.254:{port}/photo.png")
        ]
    report["open_hits"] = list(HITS)

    # 2. Allow-list "*" (every host name passes): the address check alone must refuse every internal target.
    HITS.clear()
    with run_fashionai(env={"FASHIONAI_FETCH_ALLOW_HOSTS": "*"}) as server:
        report["star_internal"] = [_submit(server.root_url, server.api_key, url) for url in internal]
        report["star_redirects"] = [_submit(server.root_url, server.api_key, url) for url in redirects]
        report["star_allowed"] = [
            _submit(server.root_url, server.api_key, url)
            for url in (f"{public}/photo.png", f"{public}/to?url={public}/photo.png")
        ]
        report["star_data_uri"] = _submit(
            server.root_url, server.api_key, "data:image/png;base64," + base64.b64encode(PNG).decode()
        )
    report["star_hits"] = list(HITS)

    # 3. A named list: other hosts are refused before any DNS or connection, and so are redirects off the list.
    HITS.clear()
    with run_fashionai(env={"FASHIONAI_FETCH_ALLOW_HOSTS": f"{PUBLIC_IP},localhost,127.0.0.1"}) as server:
        report["named_internal_listed"] = [
            _submit(server.root_url, server.api_key, url)
            for url in (f"http://localhost:{port}/photo.png", f"http://127.0.0.1:{port}/photo.png")
        ]
        report["named_unlisted"] = [
            _submit(server.root_url, server.api_key, url)
            for url in (f"http://10.0.0.1:{port}/photo.png", f"http://[::1]:{port}/photo.png")
        ]
        report["named_redirect"] = [
            _submit(server.root_url, server.api_key, f"{public}/to?url=http://10.0.0.1:{port}/photo.png"),
            _submit(server.root_url, server.api_key, f"{public}/photo.png"),
        ]
    report["named_hits"] = list(HITS)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
