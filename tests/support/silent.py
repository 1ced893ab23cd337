"""A TCP server on 127.0.0.1 that accepts connections and never answers.

The worst index there is: a client without a timeout of its own waits
forever, and retries multiply that. ``connections`` counts who came.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

from tests.support.lifetime import StartStop


if TYPE_CHECKING:
    from typing_extensions import Self


class SilentServer(StartStop):
    """Accepts on a random port, keeps every connection open, says nothing."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._socket.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.connections = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self.connections += 1
            self._held.append(connection)

    def start(self) -> Self:
        """Start accepting."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting; close every held connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        for connection in self._held:
            connection.close()
        self._socket.close()
