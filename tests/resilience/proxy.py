"""A TCP relay on loopback whose link can be cut like a 4G link: silently.

`cut()` stops relaying in both directions and answers nothing, without closing
any socket (no RST, no FIN): the peers see a half-open connection and only their
keepalives tell them. New connections are accepted and left mute too.
`restore()` closes the mute connections (as a NAT that has forgotten them would
reset them) and relays again.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

from territoire.services import LOOPBACK


class LinkCutProxy:
    def __init__(self, target_port: int):
        self.target_port = target_port
        self._listen = socket.create_server((LOOPBACK, 0))
        self.port = int(self._listen.getsockname()[1])
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._thread = threading.Thread(target=self._accept, name="link-cut-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._listen.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listen.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                with self._lock:
                    self._pairs.append((client, client))  # mute: held open, never answered
                continue
            try:
                upstream = socket.create_connection((LOOPBACK, self.target_port), timeout=2)
            except OSError:
                client.close()  # the broker itself is down: refuse, as it would
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ)
            sel.register(b, selectors.EVENT_READ)
            while not self._stop.is_set():
                if self._cut.is_set():
                    self._cut_wait()
                    break  # restore() closed us
                for key, _ in sel.select(0.1):
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = sock.recv(65536)
                        if not data:
                            raise OSError("closed")
                        if not self._cut.is_set():
                            peer[sock].sendall(data)
                    except OSError:
                        self._close(a, b)
                        return

    def _cut_wait(self) -> None:
        while self._cut.is_set() and not self._stop.is_set():
            self._stop.wait(0.05)

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        self._cut.set()

    def restore(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            self._close(a, b)
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self._close(self._listen)
        self.restore()
        self._thread.join(2)
