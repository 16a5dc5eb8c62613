"""Errors of the execution backends."""

from __future__ import annotations

from openesd.errors import BadRequest


class EngineError(BadRequest):
    """The engine refused a request (unknown endpoint, endpoint stopped)."""


class Cancelled(Exception):  # noqa: N818 (it is what happened, not a fault)
    """Raised in a worker's progress callback when its job was cancelled: no generation code catches it, so
    it ends the job at the model call that noticed it, and the worker reports JobCancelled."""

    def __init__(self, step: int):
        super().__init__(f"cancelled at model call {step}")
        self.step = step
