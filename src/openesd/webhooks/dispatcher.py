"""Webhook delivery: a thread per API replica claims due deliveries with a lease (so one attempt is made by
one replica), POSTs each signed, never following a redirect and connecting only to checked public addresses,
and retries failures with doubling delays until 24 h after the event."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy.orm import Session, sessionmaker

from openesd.checkpoints.downloads import NonPublicAddress, checked_client
from openesd.client.webhooks import HEADER, sign
from openesd.keys import PasswordCipher
from openesd.metadata.models import WebhookDelivery
from openesd.webhooks.repository import WebhookRepository
from openesd.webhooks.service import PRIVATE_HINT, WebhookSecrets

log = logging.getLogger("openesd.webhooks.dispatcher")
FIRST_RETRY_S = 10.0
MAX_RETRY_S = 3600.0
GIVE_UP_AFTER_S = 24 * 3600.0
RESPONSE_SNIPPET_CHARS = 512  # of each answer, kept on the delivery for the user to read


def retry_delay(attempts: int) -> float:
    """10 s after the first failure, doubling, at most an hour."""
    return min(FIRST_RETRY_S * 2.0 ** (attempts - 1), MAX_RETRY_S)


@dataclass(frozen=True)
class Attempt:
    at: float
    status_code: int | None
    response: str | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDispatcher:
    def __init__(
        self,
        make_session: sessionmaker[Session],
        cipher: PasswordCipher,
        owner: str,
        *,
        allow_private: bool,
        timeout_s: float = 10.0,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        batch: int = 20,
    ):
        self._make_session, self._cipher, self.owner = make_session, cipher, owner
        self._allow_private, self._timeout_s, self._poll_s = allow_private, timeout_s, poll_s
        self._clock, self._batch = clock, batch
        self.lease_s = max(60.0, 3 * timeout_s)  # outlives one POST, so no second replica retries it meanwhile
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openesd-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(self._timeout_s + 5.0)

    def run_once(self) -> int:
        """Claim and attempt every due delivery; how many attempts this replica made."""
        with self._make_session() as session:
            due = WebhookRepository(session).due(self._clock(), self._batch)
        made = 0
        for delivery_id, attempts in due:
            with self._make_session.begin() as session:  # the lease is committed before the POST
                now = self._clock()
                if not WebhookRepository(session).claim(delivery_id, attempts, self.owner, now, now + self.lease_s):
                    continue  # another replica took this attempt
            self._attempt(delivery_id)
            made += 1
        return made

    def _attempt(self, delivery_id: str) -> None:
        with self._make_session.begin() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            url, body = delivery.url, delivery.body.encode()
            secret = WebhookSecrets(session, self._cipher).get_or_create(delivery.owner)
        attempt = self._post(delivery_id, url, body, secret)
        with self._make_session.begin() as session:
            held = WebhookRepository(session).held(delivery_id, self.owner)
            if held is None:
                log.warning("the lease on webhook delivery %s lapsed during its attempt", delivery_id)
                return
            _record(held, attempt)

    def _post(self, delivery_id: str, url: str, body: bytes, secret: str) -> Attempt:
        now = self._clock()
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(secret, body, int(now)),
            "OpenESD-Delivery": delivery_id,
            "User-Agent": "OpenESD-Webhooks",
        }
        try:
            with checked_client(self._allow_private, self._timeout_s) as client:
                response = client.post(url, content=body, headers=headers)  # httpx follows no redirect by default
        except NonPublicAddress as address:
            return Attempt(now, None, None, f"{url} resolves to the non-public address {address}; {PRIVATE_HINT}")
        except httpx.HTTPError as error:
            return Attempt(now, None, None, f"{type(error).__name__}: {error}")
        snippet = response.text[:RESPONSE_SNIPPET_CHARS]
        return Attempt(now, response.status_code, snippet, _answer_error(response))

    def _run(self) -> None:
        while not self._stopped.wait(self._poll_s):
            try:
                self.run_once()
            except Exception:  # a database hiccup must not end the deliveries
                log.exception("delivering webhooks failed")


def _answer_error(response: httpx.Response) -> str | None:
    if response.is_redirect:
        return f"redirect to {response.headers.get('location')} not followed"
    return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


def _record(delivery: WebhookDelivery, attempt: Attempt) -> None:
    """Write the attempt and what comes next: done, another try after the backoff, or given up."""
    delivery.attempts += 1
    delivery.last_status_code = attempt.status_code
    entry = {"at": attempt.at, "status_code": attempt.status_code, "response": attempt.response, "error": attempt.error}
    delivery.attempt_log = [*delivery.attempt_log, entry]
    delivery.lease_owner, delivery.lease_until = None, None
    if attempt.delivered:
        delivery.status, delivery.next_attempt_at = "delivered", None
        return
    retry_at = attempt.at + retry_delay(delivery.attempts)
    if retry_at > delivery.created + GIVE_UP_AFTER_S:
        delivery.status, delivery.next_attempt_at = "failed", None
    else:
        delivery.next_attempt_at = retry_at
