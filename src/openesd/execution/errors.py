"""Errors of the execution backends."""

from __future__ import annotations

from openesd.errors import BadRequest


class EngineError(BadRequest):
    """The engine refused a request (unknown endpoint, endpoint stopped)."""
