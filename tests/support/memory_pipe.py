"""The worker's end of its pipe, in memory, for tests that call `_endpoint_process._serve` directly."""

from __future__ import annotations

import queue


class MemoryPipe:
    """What the worker sends is kept in order (`sent`); orders put on `inbox` (a CancelJob, a StopInstance)
    are what the worker reads as the engine's."""

    def __init__(self) -> None:
        self.sent: list = []
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()

    def send(self, message: object) -> None:
        self.sent.append(message)

    def poll(self) -> bool:
        return not self.inbox.empty()

    def recv(self) -> object:
        try:
            return self.inbox.get_nowait()
        except queue.Empty:
            raise EOFError("no order waiting") from None
