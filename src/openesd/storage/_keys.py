"""Object key rules shared by every store, so a key that works on S3 works on local disk too."""

from __future__ import annotations

from openesd.storage.errors import InvalidKey

MAX_KEY_LENGTH = 1024  # S3's limit, in UTF-8 bytes
MAX_SEGMENT_LENGTH = 255  # a file or folder name on the local store's disk (ext4, APFS, NTFS), in UTF-8 bytes


def check_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative posix path, else raise InvalidKey naming it."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"object key must be a non-empty string, got {key!r}")
    _check_characters(key)
    if key.startswith("/"):
        raise InvalidKey(f"object key {key!r} must be relative, not an absolute path")
    if key.endswith("/"):
        raise InvalidKey(f"object key {key!r} names a folder, not an object")
    for segment in key.split("/"):
        _check_segment(key, segment)
    return key


def check_prefix(prefix: str) -> str:
    """Like `check_key`, but the empty prefix and a trailing `/` are allowed."""
    if prefix == "":
        return prefix
    check_key(prefix.rstrip("/") if prefix != "/" else prefix)
    return prefix


def _check_characters(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_LENGTH:
        raise InvalidKey(f"object key {key[:64]!r}... is longer than {MAX_KEY_LENGTH} bytes")
    if "\\" in key:
        raise InvalidKey(f"object key {key!r} contains a backslash; use '/' between folders")
    # Control characters (NUL, newlines) would break file names and the signed-URL message.
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise InvalidKey(f"object key {key!r} contains a control character")


def _check_segment(key: str, segment: str) -> None:
    if segment in ("", ".", ".."):
        raise InvalidKey(f"object key {key!r} has an empty, '.' or '..' path segment")
    if len(segment.encode("utf-8")) > MAX_SEGMENT_LENGTH:
        raise InvalidKey(
            f"object key {key[:64]!r}... has a folder or file name longer than "
            f"{MAX_SEGMENT_LENGTH} bytes: {segment[:64]!r}..."
        )
