"""One bell per server process that wakes its open event streams when a new event may exist.

All streams share one cheap query (the newest event id) every `poll_s`, so 200 idle streams cost what one
does; on PostgreSQL a LISTEN connection rings at once on the NOTIFY that `publish` sends with each event
(from any replica or worker), and the query becomes a slow safety net. The bell also prunes old events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import URL, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from openesd.jobevents.publish import CHANNEL, prune
from openesd.metadata.models import JobEventRow

log = logging.getLogger("openesd.jobevents.bell")
PRUNE_EVERY_S = 60.0


class EventBell:
    def __init__(self, make_session: sessionmaker[Session], keep_s: float, poll_s: float = 0.25):
        self._make_session, self._keep_s, self._poll_s = make_session, keep_s, poll_s
        self.generation = 0  # rung count: a stream that saw one value and wakes to another reads again
        self._latest: int | None = None
        # Each waiting stream's event and its loop (an app may serve from more than one, as tests do).
        self._waiters: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}
        self._task: asyncio.Task[None] | None = None
        self._listener: _Listener | None = None
        self._pruned_at = 0.0

    async def wait(self, seen: int, timeout: float) -> None:
        """Return once the bell rang after generation `seen` (at once if it already did) or `timeout` passed."""
        self._start()
        if self.generation != seen:
            return
        event = asyncio.Event()
        self._waiters[event] = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.pop(event, None)

    def ring(self) -> None:
        """Wake every waiting stream, each on its own event loop."""
        self.generation += 1
        for event, loop in list(self._waiters.items()):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed: its stream is gone
                self._waiters.pop(event, None)

    def close(self) -> None:
        """Stop polling and listening (a later stream starts them again, on its own event loop)."""
        task, listener, self._task, self._listener = self._task, self._listener, None, None
        if task is not None:
            task.cancel()
        if listener is not None:
            listener.stop()

    def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        bind = self._make_session.kw["bind"]
        if bind.dialect.name == "postgresql" and self._listener is None:
            self._listener = _Listener(bind.url, self.ring)
            self._poll_s = max(self._poll_s, 2.0)  # NOTIFY rings at once; the query only covers a lost connection

    async def _run(self) -> None:
        while True:
            try:
                latest = await run_in_threadpool(self._newest_id)
                if latest != self._latest:
                    self._latest = latest
                    self.ring()
                if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                    self._pruned_at = time.monotonic()
                    await run_in_threadpool(self._prune)
            except Exception:  # a database hiccup must not stop every stream of the process
                log.warning("reading the newest job event failed", exc_info=True)
            await asyncio.sleep(self._poll_s)

    def _newest_id(self) -> int | None:
        with self._make_session() as session:
            return session.scalar(select(func.max(JobEventRow.id)))

    def _prune(self) -> None:
        with self._make_session.begin() as session:
            prune(session, self._keep_s)


class _Listener:
    """A thread holding one PostgreSQL connection in LISTEN; calls `ring` on each notification."""

    def __init__(self, url: URL, ring: Callable[[], None]):
        self._url, self._ring = url, ring
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openesd-job-events-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg

        conninfo = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        for _ in connection.notifies(timeout=1.0, stop_after=1):
                            self._ring()
            except psycopg.Error:
                log.warning("LISTEN %s lost its connection; retrying", CHANNEL, exc_info=True)
                self._stop.wait(1.0)
