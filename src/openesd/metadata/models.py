"""The metadata tables: users, roles, tokens (ESD's MultiUserTable) and model-file records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, validates

from openesd.metadata.base import Base, TimestampMixin


class Role(TimestampMixin, Base):
    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    creator: Mapped[str] = mapped_column(String(255))
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)


class User(TimestampMixin, Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    creator: Mapped[str] = mapped_column(String(255))
    # Role names in the order given; a name whose role was deleted is dropped by the role service.
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    # compat: reversibly encrypted (decisions.md), `GET /users?show_password=1` must return it.
    password_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # strict: an argon2 hash; the ciphertext is then cleared (auth/passwords.py).
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)


class PersonalToken(TimestampMixin, Base):
    __tablename__ = "personal_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # sha256 of the whole token: tokens carry 256 random bits, so a fast hash is enough.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LoginFailure(Base):
    """One wrong password at `POST /tokens` in strict mode; the login throttle counts them per subject."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_subject_at", "subject", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # sha256 of "user:<name>" or "address:<client address>": fixed length whatever name is tried.
    subject: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)


class Checkpoint(Base):
    """A model file record (esd-api.md §6.1); its files live under `<type>/checkpoint/custom/<id>/`."""

    __tablename__ = "checkpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    checkpoint_type: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    names: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[float] = mapped_column(Float, index=True)
    allowed_roles_or_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # sha256 per file name, filled in when the file's content is complete.
    hashes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # sha256 of the first file: finds the same content uploaded twice under one type.
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    version: Mapped[str] = mapped_column(String(16), default="v1.0")


class CheckpointName(Base):
    """One row per file name: the primary key makes names unique across all checkpoints (§6.1)."""

    __tablename__ = "checkpoint_names"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"), index=True)


class Endpoint(Base):
    """An inference endpoint (esd-api.md §7.1): a pool of worker processes run by the engine."""

    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Unique: creating the same name twice is ESD's `Cannot create already existing model`.
    endpoint_name: Mapped[str] = mapped_column(String(255), unique=True)
    endpoint_type: Mapped[str] = mapped_column(String(16))
    endpoint_status: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)  # legacy, null for new rows
    autoscaling: Mapped[bool] = mapped_column(Boolean)
    instance_type: Mapped[str] = mapped_column(String(64), index=True)
    initial_instance_count: Mapped[int] = mapped_column(Integer)
    current_instance_count: Mapped[int] = mapped_column(Integer, default=0)
    min_instance_number: Mapped[int] = mapped_column(Integer)
    max_instance_number: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[str] = mapped_column(String(32))
    started: Mapped[float] = mapped_column(Float, index=True)  # sort key of `startTime`
    end_time: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner_group_or_role: Mapped[list[str]] = mapped_column(JSON, default=list)
    custom_extensions: Mapped[str] = mapped_column(Text, default="")
    creator: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # OpenESD: the Stable-diffusion checkpoints ({id, model_name}) each instance loads before it is ready.
    preload_models: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, nullable=True)


class InferenceJob(Base):
    """An inference job (esd-api.md §8.1); the row is the source of truth for its state."""

    __tablename__ = "inference_jobs"
    __table_args__ = (
        Index("ix_inference_jobs_listing", "task_type", "created", "id"),  # one page = one index range
        Index("ix_inference_jobs_owner", "owner", "task_type", "created"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task_type: Mapped[str] = mapped_column(String(32), index=True)
    inference_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    owner_group_or_role: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The list's only name (a job's list is [creator]), so that the listing filters visibility in SQL;
    # null when the list holds none or several, and then the listing reads the list itself.
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    create_time: Mapped[str] = mapped_column(String(32))
    created: Mapped[float] = mapped_column(Float, index=True)  # sort key of `createTime`
    start_time: Mapped[str | None] = mapped_column(String(32), nullable=True)
    complete_time: Mapped[str | None] = mapped_column(String(32), nullable=True)
    image_names: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    inference_info_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    sagemaker_raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload_string: Mapped[str | None] = mapped_column(Text, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    endpoint_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    # Handed to the engine and not finished yet: dispatched again after a server restart.
    queued: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The API replica that carries the job (`host:pid:uuid`) renews this lease; a lapsed one is claimed by
    # another replica, which dispatches the job again (inferences/leases.py).
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)  # epoch seconds
    # Who asked `PUT /inferences/{id}/cancel`: the replica carrying the job reads it at the job's next report.
    cancelled_by: Mapped[str | None] = mapped_column(String(255), nullable=True)

    @validates("owner_group_or_role")
    def _keep_owner(self, _key: str, names: list[str]) -> list[str]:
        """Every write of the list sets `owner`, wherever the row is built."""
        self.owner = sole_owner(names)
        return names


def sole_owner(names: list[str] | None) -> str | None:
    """The `owner` column of an inference job with this owner list (migration 0008 backfills the same)."""
    return names[0] if isinstance(names, list) and len(names) == 1 else None


class Dataset(Base):
    """A training dataset (esd-api.md §9.1); its files live under `dataset/<name>/[<prefix>/]`."""

    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created: Mapped[float] = mapped_column(Float, index=True)  # ESD's `timestamp`
    prefix: Mapped[str] = mapped_column(String(255), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allowed_roles_or_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    creator: Mapped[str | None] = mapped_column(String(255), nullable=True)


class DatasetItem(Base):
    """One file of a dataset; `key` is its object-store key (unique: a re-upload replaces the item)."""

    __tablename__ = "dataset_items"

    dataset_name: Mapped[str] = mapped_column(ForeignKey("datasets.name", ondelete="CASCADE"), primary_key=True)
    sort_key: Mapped[str] = mapped_column(String(512), primary_key=True)  # "<timestamp>_<name>"
    key: Mapped[str] = mapped_column(String(1024), index=True)
    name: Mapped[str] = mapped_column(String(512))
    item_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allowed_roles_or_users: Mapped[list[str]] = mapped_column(JSON, default=list)


class Training(Base):
    """A kohya LoRA training job (esd-api.md §10.1); its output checkpoint has the same id."""

    __tablename__ = "trainings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created: Mapped[float] = mapped_column(Float, index=True)  # ESD's `timestamp`
    job_status: Mapped[str] = mapped_column(String(32), index=True)  # a plain string (decisions.md)
    checkpoint_id: Mapped[str] = mapped_column(String(36))
    instance_type: Mapped[str] = mapped_column(String(64), index=True)
    sagemaker_train_name: Mapped[str] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allowed_roles_or_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The machine whose engine runs it: after a restart there, a running training is failed.
    runner_host: Mapped[str | None] = mapped_column(String(255), nullable=True)


class LegacyModel(Base):
    """A dreambooth-era base model of the legacy API (esd-legacy-api.md §9): a name over a checkpoint."""

    __tablename__ = "legacy_models"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    checkpoint_id: Mapped[str] = mapped_column(String(36))
    model_type: Mapped[str] = mapped_column(String(32))
    job_status: Mapped[str] = mapped_column(String(16), index=True)
    output_s3_location: Mapped[str] = mapped_column(String(1024))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[float] = mapped_column(Float, index=True)
    allowed_roles_or_users: Mapped[list[str]] = mapped_column(JSON, default=list)


class WebhookSecret(Base):
    """A user's webhook signing secret, Fernet-encrypted as passwords are: the server must read it to sign."""

    __tablename__ = "webhook_secrets"

    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"), primary_key=True)
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[float] = mapped_column(Float)


class WebhookSubscription(Base):
    """The `webhook` a job was created with: where its events go and which ones."""

    __tablename__ = "webhook_subscriptions"

    job_kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # inference | training
    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)


class WebhookDelivery(Base):
    """One event to POST to a job's webhook; replicas claim due rows with a lease (webhooks/dispatcher.py)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_job", "job_kind", "job_id", "created"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_kind: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str] = mapped_column(String(36))
    owner: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(String(2048))
    event: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)  # fixed at the event: every attempt sends the same bytes
    created: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Every attempt: {at, status_code, response (bounded), error}.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class JobEventRow(Base):
    """One live event of a job (decisions.md, Jobs: live events); `id` is the stream's `id:`, increasing
    across jobs, so one number resumes any stream (`Last-Event-ID`)."""

    __tablename__ = "job_events"
    __table_args__ = (
        Index("ix_job_events_job", "job_kind", "job_id", "id"),
        Index("ix_job_events_owner", "owner", "id"),
        # ids never come back after a prune emptied the table: a client's Last-Event-ID stays meaningful
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_kind: Mapped[str] = mapped_column(String(16))  # inference | training
    job_id: Mapped[str] = mapped_column(String(36))
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[float] = mapped_column(Float, index=True)  # epoch seconds: pruning


class WebUIOptions(Base):
    """A user's own AUTOMATIC1111 settings (`POST /sdapi/v1/options`): the defaults of that user's WebUI jobs."""

    __tablename__ = "webui_options"

    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"), primary_key=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated: Mapped[float] = mapped_column(Float)
