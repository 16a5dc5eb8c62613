"""Webhook rules: the URL a job may name, the events that become deliveries, users' signing secrets."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openesd.checkpoints._addresses import non_public
from openesd.checkpoints.downloads import resolve_host
from openesd.errors import BadRequest
from openesd.keys import PasswordCipher
from openesd.metadata.models import WebhookDelivery, WebhookSecret, WebhookSubscription
from openesd.webhooks.repository import WebhookRepository
from openesd.webhooks.schemas import EVENTS, JOB_KINDS, Webhook

PRIVATE_HINT = "webhooks to private networks are off (set OPENESD_ALLOW_PRIVATE_WEBHOOKS=true to allow them)"


def check_url(url: str, allow_private: bool) -> None:
    """Refuse what a delivery must never reach: non-http(s), credentials in the URL, non-public addresses.
    The dispatcher checks the addresses again at each connection (DNS may change after this)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"webhook URL {url} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise BadRequest(f"webhook URL {url} carries credentials: sign-in details do not belong in a URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadRequest(f"webhook URL {url} has an invalid port") from None
    if allow_private:
        return
    try:
        addresses = resolve_host(parts.hostname, port)
    except Exception as error:  # httpcore.ConnectError: the host does not resolve
        raise BadRequest(f"webhook URL {url}: {error}") from None
    refused = [name for address in addresses if (name := non_public(address))]
    if refused:
        raise BadRequest(f"webhook URL {url} resolves to the non-public address {refused[0]}; {PRIVATE_HINT}")


class WebhookService:
    def __init__(self, session: Session, allow_private: bool = False):
        self.repo = WebhookRepository(session)
        self.allow_private = allow_private

    def check(self, webhook: Webhook | None) -> None:
        """400 naming the URL, address or events a job's webhook may not have."""
        if webhook is None:
            return
        check_url(webhook.url, self.allow_private)
        unknown = [event for event in webhook.events if event not in EVENTS]
        if unknown or not webhook.events:
            raise BadRequest(f"webhook events {webhook.events} should be a non-empty list among {', '.join(EVENTS)}")

    def subscribe(self, job_kind: str, job_id: str, owner: str, webhook: Webhook | None) -> None:
        """Keep the job's webhook (checked with `check` first); nothing when the job carries none."""
        if webhook is None:
            return
        events = list(dict.fromkeys(webhook.events))
        self.repo.subscribe(
            WebhookSubscription(job_kind=job_kind, job_id=job_id, owner=owner, url=webhook.url, events=events)
        )

    def forget(self, job_kind: str, job_id: str) -> None:
        """The job is deleted: its webhook goes with it and no further delivery is made."""
        self.repo.forget(job_kind, job_id)

    def view(self, job_kind: str, job_id: str) -> dict[str, Any] | None:
        """`webhook` of `GET /inferences/{id}` (and trainings): the subscription and each event's delivery."""
        subscription = self.repo.subscription(job_kind, job_id)
        if subscription is None:
            return None
        deliveries = [
            {
                "id": d.id,
                "event": d.event,
                "status": d.status,
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "last_error": d.attempt_log[-1].get("error") if d.attempt_log else None,
                "next_attempt_at": d.next_attempt_at if d.status == "pending" else None,
            }
            for d in self.repo.deliveries(job_kind, job_id)
        ]
        return {"url": subscription.url, "events": subscription.events, "deliveries": deliveries}


def on_event(session: Session, job_kind: str, job_id: str, owner: str, kind: str, data: dict[str, Any]) -> None:
    """A job event (called where the event is recorded, in its transaction): queue a delivery when the
    job's webhook asks for this kind. The body is fixed now; each attempt signs it afresh. It is signed with
    the secret of whoever set the webhook (the subscription's owner; `owner` is the event's, the same user)."""
    if job_kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {job_kind}")  # a programming error, not a user's
    if kind not in EVENTS:  # a kind no webhook can ask for (a training's `phase`)
        return
    repo = WebhookRepository(session)
    subscription = repo.subscription(job_kind, job_id)
    if subscription is None or kind not in subscription.events:
        return
    delivery_id, now = str(uuid.uuid4()), time.time()
    body = {"id": delivery_id, "type": kind, "created": now, "data": {"job_kind": job_kind, "job_id": job_id, **data}}
    repo.add_delivery(
        WebhookDelivery(
            id=delivery_id,
            job_kind=job_kind,
            job_id=job_id,
            owner=subscription.owner,
            url=subscription.url,
            event=kind,
            body=json.dumps(body, default=str),
            created=now,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            attempt_log=[],
        )
    )


class WebhookSecrets:
    """Users' signing secrets, encrypted with the password key (every replica must read them to sign)."""

    def __init__(self, session: Session, cipher: PasswordCipher):
        self.session, self.repo, self.cipher = session, WebhookRepository(session), cipher

    def get_or_create(self, username: str) -> str:
        stored = self.repo.secret(username)
        if stored is not None:
            return self.cipher.decrypt(stored.secret_ciphertext)
        secret = _new_secret()
        try:
            with self.session.begin_nested():  # another replica may create it at the same moment
                self.repo.add_secret(
                    WebhookSecret(username=username, secret_ciphertext=self.cipher.encrypt(secret), created=time.time())
                )
        except IntegrityError:
            stored = self.repo.secret(username)
            if stored is None:
                raise
            return self.cipher.decrypt(stored.secret_ciphertext)
        return secret

    def rotate(self, username: str) -> str:
        """A new secret at once: deliveries signed from now on use it, the old one stops verifying."""
        secret = _new_secret()
        stored = self.repo.secret(username)
        if stored is None:
            self.repo.add_secret(
                WebhookSecret(username=username, secret_ciphertext=self.cipher.encrypt(secret), created=time.time())
            )
        else:
            stored.secret_ciphertext, stored.created = self.cipher.encrypt(secret), time.time()
        return secret


def _new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"
