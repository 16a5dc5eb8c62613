"""Tables of users, roles and personal tokens (ESD's MultiUserTable, split by kind)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, LargeBinary, String
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
