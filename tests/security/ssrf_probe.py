"""SSRF probe for the Fashion AI service, run by test_fashionai_attacks.py inside a private network namespace.

Why a namespace: a redirect from an *allowed, public* host to an internal one can only be tested with a public
address that answers. `unshare --net` gives this process its own loopback, where we add a public address
(PUBLIC_IP) and the "internal" targets (10.0.0.1, 169.254.169.254) as real listening addresses. Nothing leaves the
namespace. One HTTP server (dual-stack, every address) plays the image host, the redirector and the metadata
endpoint, and records which local address each request reached, so the test can prove that no internal address
was ever contacted. Prints one JSON document on stdout.
"""

from __future__ import annotations

import asyncio
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
from fashionai.fetch import FetchError, FetchPolicy, fetch_image  # noqa: E402

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


def _rebinding(port: int) -> dict[str, object]:
    """A name whose DNS answer turns internal after the first lookup (rebinding), through the system resolver.

    The check sees the public address; a client that resolves again to connect would reach 127.0.0.1. Runs the
    service's own fetch code in this process, where socket.getaddrinfo can play the attacker's DNS server.
    """
    real = socket.getaddrinfo
    answers = {"rebind.test": [PUBLIC_IP, "127.0.0.1"], "mixed.test": [PUBLIC_IP, "127.0.0.1"]}
    lookups: list[str] = []

    def attacker_dns(host: object, port: object, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
        name = str(host)
        if name == "rebind.test":  # public on the first lookup, internal on every later one
            lookups.append(name)
            address = PUBLIC_IP if len(lookups) == 1 else "127.0.0.1"
            return real(address, port, *args, **kwargs)  # type: ignore[arg-type]
        if name == "mixed.test":  # both at once: one internal answer is enough to refuse
            return [info for a in answers[name] for info in real(a, port, *args, **kwargs)]  # type: ignore[arg-type]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    policy = FetchPolicy(allow_hosts=("*",), timeout=10)
    results: dict[str, object] = {}
    socket.getaddrinfo = attacker_dns  # type: ignore[assignment]
    try:
        for name in ("rebind.test", "mixed.test"):
            HITS.clear()
            try:
                body = asyncio.run(fetch_image(f"http://{name}:{port}/photo.png", policy))
                outcome = "fetched" if body == PNG else "other body"
            except FetchError as exc:
                outcome = f"refused: {exc.reason}"
            results[name] = {"outcome": outcome, "hits": list(HITS)}
    finally:
        socket.getaddrinfo = real
    results["lookups"] = len(lookups)
    return results


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
        # IPv6 forms that embed IPv4 (a gateway or the stack itself would take them to 127.0.0.1 / 10.0.0.1)
        f"http://[64:ff9b::7f00:1]:{port}/photo.png",  # NAT64
        f"http://[64:ff9b:1::a00:1]:{port}/photo.png",  # NAT64 local-use
        f"http://[2002:7f00:1::1]:{port}/photo.png",  # 6to4
        f"http://[::127.0.0.1]:{port}/photo.png",  # IPv4-compatible
        f"http://[::ffff:0:7f00:1]:{port}/photo.png",  # IPv4-translated
        f"http://[fec0::1]:{port}/photo.png",  # site-local
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

    # 1. The control: allowed explicitly (host:port), the internal targets answer, so refusals below are the
    #    policy's doing. Then the default (an empty list, what compose ships) fetches nothing at all.
    HITS.clear()
    control_allow = f"127.0.0.1:{port},169.254.169.254:{port}"
    with run_fashionai(env={"FASHIONAI_FETCH_ALLOW_INTERNAL": control_allow}) as server:
        report["control"] = [
            _submit(server.root_url, server.api_key, url)
            for url in (f"http://127.0.0.1:{port}/photo.png", f"http://169.254.169.254:{port}/photo.png")
        ]
    report["control_hits"] = list(HITS)
    HITS.clear()
    with run_fashionai() as server:
        report["empty_internal"] = [_submit(server.root_url, server.api_key, url) for url in internal]
        report["empty_public"] = _submit(server.root_url, server.api_key, f"{public}/photo.png")
    report["empty_hits"] = list(HITS)

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
        report["star_log"] = server.log()
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
        report["named_log"] = server.log()
    report["named_hits"] = list(HITS)
    report["rebind"] = _rebinding(port)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
