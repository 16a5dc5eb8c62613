"""Password login throttle (strict mode): wrong passwords counted per user name and per client address.

The failures live in the database, in their own short transactions, so every API replica sees the same
count and a refused login (whose request transaction rolls back) is still counted.
"""

from __future__ import annotations

import hashlib
import math
import time

from sqlalchemy.orm import Session, sessionmaker

from openesd.errors import TooManyRequests
from openesd.settings import Settings
from openesd.tokens.repository import LoginFailureRepository


class LoginThrottle:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings):
        self.sessions = sessions
        self.settings = settings

    def check(self, username: str, address: str) -> None:
        """429 with Retry-After while the user name or the address is locked, whatever the password."""
        now = time.time()
        limits = (
            ("user name", username, self.settings.login_max_failures),
            ("address", address, self.settings.login_max_failures_per_address),
        )
        with self.sessions() as session:
            failures = LoginFailureRepository(session)
            for kind, value, limit in limits:
                count, latest = failures.recent(_subject(kind, value), now - self.settings.login_window_s)
                wait = self._locked_until(count, latest, limit) - now
                if wait > 0:
                    raise TooManyRequests(
                        f"too many failed logins for this {kind}: try again in {math.ceil(wait)} s", math.ceil(wait)
                    )

    def failed(self, username: str, address: str) -> None:
        now = time.time()
        with self.sessions.begin() as session:
            failures = LoginFailureRepository(session)
            failures.prune(now - self.settings.login_window_s)
            failures.add([_subject("user name", username), _subject("address", address)], now)

    def succeeded(self, username: str) -> None:
        """A good password clears the user name's count; the address keeps its own (one account of one's own
        must not reset the count of guesses at others)."""
        with self.sessions.begin() as session:
            LoginFailureRepository(session).forget(_subject("user name", username))

    def _locked_until(self, count: int, latest: float | None, limit: int) -> float:
        if count < limit or latest is None:
            return 0.0
        backoff = self.settings.login_lockout_s * 2 ** min(count - limit, 30)
        return latest + min(backoff, self.settings.login_window_s)


def _subject(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode("utf-8", "surrogatepass")).hexdigest()
