"""Inference errors callers tell apart by `code` (the legacy adapter answers each its own way)."""

from __future__ import annotations

from openesd.errors import BadRequest


class NoEndpointAvailable(BadRequest):
    """No schedulable endpoint of the asked type is open to the requester."""

    code = "no_endpoint_available"


class ModelsNotFound(BadRequest):
    """Models the job names that do not exist or are hidden from the requester: one line each in `missing`."""

    code = "models_not_found"

    def __init__(self, missing: list[str]):
        super().__init__(" ".join(missing))
        self.missing = list(missing)
