"""A Unix-socket proxy in front of the real engine that can fail on purpose.

It passes every request through to the real Docker socket, except that a
request whose first line contains a chosen path can be answered with an
error, or cut off after the engine has started answering, the way an engine
that dies mid-build looks to its client. Only the engine's failure is
simulated; everything else is the real engine.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

REAL_SOCKET = "/var/run/docker.sock"


class EngineProxy:
    """Listens on `path` and forwards to the real engine."""

    def __init__(self, path: Path, match: bytes, mode: str) -> None:
        self.path = path
        self.match = match
        self.mode = mode  # "error" or "cut"
        self.triggered = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(16)
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def close(self) -> None:
        self._stopped = True
        self._server.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        engine.connect(REAL_SOCKET)
        threading.Thread(
            target=self._upstream, args=(client, engine), daemon=True
        ).start()
        self._pipe(engine, client)

    def _upstream(self, client: socket.socket, engine: socket.socket) -> None:
        while data := self._recv(client):
            first_line = data.split(b"\r\n", 1)[0]
            if self.match in first_line and not self.triggered.is_set():
                self.triggered.set()
                if self.mode == "error":
                    body = b'{"message":"simulated engine failure"}'
                    client.sendall(
                        b"HTTP/1.1 500 Internal Server Error\r\n"
                        b"Content-Type: application/json\r\n"
                        b"Content-Length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                        + body
                    )
                    continue
                if self._send(engine, data):
                    self._cut_after_answer(client, engine)
                return
            if not self._send(engine, data):
                break
        _close(engine)

    @staticmethod
    def _send(sock: socket.socket, data: bytes) -> bool:
        try:
            sock.sendall(data)
        except OSError:
            return False
        return True

    def _cut_after_answer(self, client: socket.socket, engine: socket.socket) -> None:
        # Let the engine start answering (the build has begun), then drop both
        # ends as a dying engine would.
        engine.settimeout(5)
        with contextlib.suppress(OSError):
            client.sendall(engine.recv(512))
        _close(engine)
        _close(client)

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        while data := self._recv(source):
            try:
                target.sendall(data)
            except OSError:
                break
        _close(target)

    @staticmethod
    def _recv(sock: socket.socket) -> bytes:
        try:
            return sock.recv(65536)
        except OSError:
            return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
