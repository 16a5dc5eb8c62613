"""The metadata tables: users, roles, tokens (ESD's MultiUserTable) and model-file records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

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
    # Reversibly encrypted (decisions.md): `GET /users?show_password=1` must return it.
    password_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class PersonalToken(TimestampMixin, Base):
    __tablename__ = "personal_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(
        ForeignKey("users.username", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    # sha256 of the whole token: tokens carry 256 random bits, so a fast hash is enough.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Checkpoint(Base):
    """A model file record (esd-api.md §6.1); its files live under `<type>/checkpoint/custom/<id>/`."""

    __tablename__ = "checkpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    checkpoint_type: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    names: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[float] = mapped_column(Float, index=True)
    allowed_roles_or_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    # sha256 per file name, filled in when the file's content is complete.
    hashes: Mapped[dict] = mapped_column(JSON, default=dict)
    # sha256 of the first file: finds the same content uploaded twice under one type.
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    version: Mapped[str] = mapped_column(String(16), default="v1.0")


class CheckpointName(Base):
    """One row per file name: the primary key makes names unique across all checkpoints (§6.1)."""

    __tablename__ = "checkpoint_names"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE"), index=True
    )
