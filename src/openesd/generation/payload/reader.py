"""Typed, validated access to one payload object: every bad value fails naming the key and the value it held."""

from __future__ import annotations

import math
from typing import Any

from openesd.errors import PayloadError


class Reader:
    """Typed access to one payload; every bad value fails with the key and the value it held."""

    def __init__(self, payload: dict):
        self.payload = payload

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.payload.get(key)
        return default if value is None else value

    def int(self, key: str, default: int, low: int | None = None, high: int | None = None) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise PayloadError(f"{key} must be an integer, got {value!r}")
        try:
            number = float(value)
            if not number.is_integer():
                raise ValueError
        except ValueError:
            raise PayloadError(f"{key} must be an integer, got {value!r}") from None
        return self._bounded(key, int(number), low, high)

    def float(self, key: str, default: float, low: float | None = None, high: float | None = None) -> float:
        value = self.raw(key, default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PayloadError(f"{key} must be a number, got {value!r}") from None
        if math.isnan(number):
            raise PayloadError(f"{key} must be a number, got NaN")
        return self._bounded(key, number, low, high)

    def str(self, key: str, default: str = "") -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise PayloadError(f"{key} must be a string, got {value!r}")
        return value

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.raw(key, default)
        if isinstance(value, (bool, int)):
            return bool(value)
        raise PayloadError(f"{key} must be true or false, got {value!r}")

    def dict(self, key: str) -> dict:
        value = self.raw(key, {})
        if not isinstance(value, dict):
            raise PayloadError(f"{key} must be an object, got {value!r}")
        return value

    @staticmethod
    def _bounded(key: str, value: Any, low: Any, high: Any) -> Any:
        if low is not None and value < low:
            raise PayloadError(f"{key} must be at least {low}, got {value}")
        if high is not None and value > high:
            raise PayloadError(f"{key} must be at most {high}, got {value}")
        return value
