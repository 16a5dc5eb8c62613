"""How users' passwords are kept: Fernet ciphertext in compat (ESD shows them back on `show_password`), an
argon2 hash in strict, where a compat ciphertext is replaced by a hash at the user's next good login."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from openesd.errors import BadRequest
from openesd.keys import PasswordCipher
from openesd.metadata.models import User

SHOW_PASSWORD_REFUSED = "show_password is not available in strict mode: passwords are stored as argon2 hashes"
_HASHER = PasswordHasher()  # argon2id with argon2-cffi's RFC 9106 low-memory defaults


@dataclass(frozen=True)
class StoredPassword:
    """The two columns of `users` that hold a password; at most one is set."""

    ciphertext: bytes | None = None
    hash: str | None = None


def has_password(user: User) -> bool:
    return user.password_ciphertext is not None or user.password_hash is not None


class Passwords:
    def __init__(self, cipher: PasswordCipher, mode: str):
        self.cipher = cipher
        self.strict = mode == "strict"

    def protect(self, password: str) -> StoredPassword:
        if self.strict:
            return StoredPassword(hash=_HASHER.hash(password))
        return StoredPassword(ciphertext=self.cipher.encrypt(password))

    def matches(self, user: User | None, password: str) -> bool:
        """Whether `password` is `user`'s. In strict mode every answer costs one argon2 verification, so
        the time taken tells nothing about whether the user exists or how its password is kept."""
        if user is not None and user.password_hash is not None:
            return _verify(user.password_hash, password)
        matched = user is not None and self.cipher.verify(password, user.password_ciphertext)
        if self.strict:
            _verify(_dummy_hash(), password)
        return matched

    def upgrade(self, user: User, password: str) -> None:
        """After a good login in strict mode: a compat ciphertext (or an outdated hash) becomes a fresh hash."""
        outdated = user.password_hash is None or _HASHER.check_needs_rehash(user.password_hash)
        if self.strict and outdated:
            user.password_hash, user.password_ciphertext = _HASHER.hash(password), None

    def shown(self, user: User, show: bool) -> str:
        """The `password` field of a listed user: `*` without one, the plaintext only on request in compat."""
        if not has_password(user):
            return "*"
        if not show:
            return "********"
        if self.strict:
            raise BadRequest(SHOW_PASSWORD_REFUSED)
        if user.password_ciphertext is None:  # set while the server ran in strict mode: not recoverable
            return "********"
        return self.cipher.decrypt(user.password_ciphertext)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _HASHER.hash("not a password anyone has")
