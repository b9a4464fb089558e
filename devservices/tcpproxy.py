"""A loopback TCP proxy that can be cut and restored: how the fault tests and the soak make one real service
unreachable for the Celery worker (refused connections, live connections dropped) while the test process keeps its
own direct connection. Bytes pass through untouched (HTTP Host headers, S3 signatures and PostgreSQL's protocol all
work).
"""

from __future__ import annotations

import contextlib
import socket
import threading

from devservices.net import free_port


class TcpProxy:
    def __init__(self, target_port: int, *, port: int | None = None, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0
        self._trigger: tuple[bytes, int] | None = None
        self._seen = 0
        self.tripped = False
        self._drop_trigger: tuple[bytes, int] | None = None
        self._drop_seen = 0
        self._muted: set[socket.socket] = set()  # upstream sockets whose answer is never delivered
        self.dropped = 0

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Down: new connections are refused and every open one is reset, as when the service dies."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._reset_live()

    def retarget(self, target_port: int) -> None:
        """Send new connections to another service on this host; open ones (to the old one) are reset."""
        self.target = (self.target[0], target_port)
        self._reset_live()

    def _reset_live(self) -> None:
        with self._lock:
            live, self._live = self._live, set()
        for sock in live:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                # close() alone does not tear down a socket another thread is blocked in recv() on: the kernel
                # keeps it open until that call returns, so idle keep-alive connections would stay up.
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def cut_on_request(self, prefix: bytes, *, nth: int) -> None:
        """Cut (as `cut()`) the moment the nth client request starting with `prefix` (e.g. b"PUT ") arrives,
        before it reaches the service: a fault between two steps of one task."""
        self._trigger, self._seen, self.tripped = (prefix, nth), 0, False

    def drop_answer_to(self, prefix: bytes, *, nth: int = 1) -> None:
        """The nth client request starting with `prefix` reaches the service whole, but its answer never comes
        back: the client's connection is reset the moment the service starts answering. The ambiguous case: the
        client cannot tell whether its request was received."""
        self._drop_trigger, self._drop_seen = (prefix, nth), 0

    def restore(self) -> None:
        if self._listener is None:
            self.start()

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._live.update((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client and self._trigger and data.startswith(self._trigger[0]):
                    self._seen += 1
                    if self._seen >= self._trigger[1]:
                        self._trigger, self.tripped = None, True
                        self.cut()
                        return
                if from_client and self._drop_trigger and data.startswith(self._drop_trigger[0]):
                    self._drop_seen += 1
                    if self._drop_seen >= self._drop_trigger[1]:
                        self._drop_trigger = None
                        self._muted.add(dst)
                if not from_client and src in self._muted:
                    self._muted.discard(src)
                    self.dropped += 1
                    with contextlib.suppress(OSError):  # RST, not FIN: the client sees a reset connection
                        dst.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._live.discard(src)
                self._live.discard(dst)
