"""Checks on the (part number, ETag) list a client sends to complete a multipart upload."""

from __future__ import annotations

from collections.abc import Sequence

from openesd.storage.errors import BadPart

MAX_PARTS = 10000  # S3's limit, kept for the local store so both behave alike


def ordered_parts(key: str, parts: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """The parts sorted by part number (clients may send them in any order), or BadPart."""
    if not parts:
        raise BadPart(f"no parts were given to complete {key}")
    ordered = sorted((_part_number(key, number), str(etag)) for number, etag in parts)
    for (number, _), (following, _) in zip(ordered, ordered[1:]):
        if number == following:
            raise BadPart(f"part {number} of {key} is listed twice")
    return ordered


def check_part_count(parts: int) -> int:
    if isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= MAX_PARTS:
        raise BadPart(f"a multipart upload has 1 to {MAX_PARTS} parts, not {parts!r}")
    return parts


def bare_etag(etag: str) -> str:
    """The ETag without its quotes: clients send it back either way."""
    return etag.strip().strip('"')


def _part_number(key: str, number: object) -> int:
    try:
        value: int = int(number)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise BadPart(f"part number {number!r} of {key} is not an integer") from None
    if not 1 <= value <= MAX_PARTS:
        raise BadPart(f"part number {value} of {key} is outside 1..{MAX_PARTS}")
    return value
