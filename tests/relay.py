"""A loopback TCP relay in front of a server, to make it hang or answer slowly.

``Relay(port)`` listens on ``127.0.0.1:<free port>`` (:attr:`Relay.uri`) and forwards
every connection to ``127.0.0.1:port``. ``relay.paused.set()``: bytes stop flowing both
ways (a server that accepts connections but never answers); ``relay.delay = 0.2``: every
chunk waits that long before it is passed on (a slow server or network). Traffic never
leaves the loopback interface.
"""

from __future__ import annotations

import socket
import threading
import time


class Relay:
    def __init__(self, port: int, delay: float = 0.0) -> None:
        self.target = port
        self.delay = delay
        self.paused = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.uri = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.socks: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                if self.delay:
                    time.sleep(self.delay)
                while self.paused.is_set() and not self._closed.is_set():
                    time.sleep(0.01)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed.set()
        self.paused.clear()
        self.listener.close()
        for sock in self.socks:
            sock.close()
