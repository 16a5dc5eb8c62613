"""All SQL of webhooks: secrets, the subscriptions jobs carry, and deliveries claimed with a lease."""

from __future__ import annotations

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from openesd.metadata.models import WebhookDelivery, WebhookSecret, WebhookSubscription


class WebhookRepository:
    def __init__(self, session: Session):
        self.session = session

    # -- secrets -----------------------------------------------------------------------------
    def secret(self, username: str) -> WebhookSecret | None:
        return self.session.get(WebhookSecret, username)

    def add_secret(self, secret: WebhookSecret) -> WebhookSecret:
        self.session.add(secret)
        self.session.flush()
        return secret

    # -- subscriptions -----------------------------------------------------------------------
    def subscription(self, job_kind: str, job_id: str) -> WebhookSubscription | None:
        return self.session.get(WebhookSubscription, (job_kind, job_id))

    def subscribe(self, subscription: WebhookSubscription) -> None:
        self.session.add(subscription)
        self.session.flush()

    def forget(self, job_kind: str, job_id: str) -> None:
        """A deleted job's webhook and deliveries, pending ones included (they would name a job that is gone)."""
        for model in (WebhookSubscription, WebhookDelivery):
            self.session.execute(delete(model).where(model.job_kind == job_kind, model.job_id == job_id))

    # -- deliveries --------------------------------------------------------------------------
    def add_delivery(self, delivery: WebhookDelivery) -> None:
        self.session.add(delivery)
        self.session.flush()

    def deliveries(self, job_kind: str, job_id: str) -> list[WebhookDelivery]:
        query = select(WebhookDelivery).where(WebhookDelivery.job_kind == job_kind, WebhookDelivery.job_id == job_id)
        return list(self.session.scalars(query.order_by(WebhookDelivery.created, WebhookDelivery.id)))

    def due(self, now: float, limit: int) -> list[tuple[str, int]]:
        """(id, attempts) of pending deliveries whose time came and that no live lease holds."""
        query = (
            select(WebhookDelivery.id, WebhookDelivery.attempts)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .where(or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now))
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
        return [(row.id, row.attempts) for row in self.session.execute(query)]

    def claim(self, delivery_id: str, attempts: int, owner: str, now: float, until: float) -> bool:
        """One conditional UPDATE: of several replicas racing for this attempt, exactly one matches."""
        result = self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending")
            .where(WebhookDelivery.attempts == attempts)
            .where(or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now))
            .values(lease_owner=owner, lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def held(self, delivery_id: str, owner: str) -> WebhookDelivery | None:
        """The delivery while `owner`'s lease on it stands; None when it lapsed to another replica."""
        delivery = self.session.get(WebhookDelivery, delivery_id, with_for_update=True)
        return delivery if delivery is not None and delivery.lease_owner == owner else None
