"""Secrets kept in the data directory: the generated API key and the password encryption key."""

from __future__ import annotations

import hmac
import os
import secrets
import string
from pathlib import Path

from openesd.errors import ConfigurationError

API_KEY_FILE = "api_key"
PASSWORD_KEY_FILE = "password.key"
_ALPHABET = string.ascii_letters + string.digits


def generate_api_key() -> str:
    """20 characters of [A-Za-z0-9], the shape ESD deployments use (esd-api.md §1.2)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(20))


def write_secret(path: Path, value: bytes) -> None:
    """Create `path` readable by the owner only; never overwrite an existing secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)


def load_or_create_api_key(data_dir: Path) -> tuple[str, bool]:
    """The stored deployment key, generating it on first start; True when it was just created."""
    path = data_dir / API_KEY_FILE
    if path.exists():
        return path.read_text().strip(), False
    key = generate_api_key()
    try:
        write_secret(path, key.encode())
    except FileExistsError:  # another process started at the same moment and won
        return path.read_text().strip(), False
    return key, True


def api_key_matches(candidate: str | None, keys: list[str]) -> bool:
    """Constant-time comparison against every configured key."""
    if not candidate:
        return False
    given = candidate.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


class PasswordCipher:
    """Reversible password storage (ESD returns plaintext on `show_password`)."""

    def __init__(self, data_dir: Path, key: str | None = None):
        """`key` (a Fernet key, shared by every API replica) wins; otherwise one kept in the data directory."""
        from cryptography.fernet import Fernet

        if key:
            try:
                self._fernet = Fernet(key.encode())
            except ValueError:
                raise ConfigurationError(
                    "OPENESD_PASSWORD_KEY must be 32 url-safe base64-encoded bytes, as "
                    "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
                    "prints"
                ) from None
            return
        path = data_dir / PASSWORD_KEY_FILE
        if not path.exists():
            try:
                write_secret(path, Fernet.generate_key())
            except FileExistsError:  # another process created it first
                pass
        self._fernet = Fernet(path.read_bytes().strip())

    def encrypt(self, password: str) -> bytes:
        return self._fernet.encrypt(password.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        return self._fernet.decrypt(ciphertext).decode()

    def verify(self, password: str, ciphertext: bytes | None) -> bool:
        if ciphertext is None:
            return False
        return hmac.compare_digest(self.decrypt(ciphertext).encode(), password.encode())
