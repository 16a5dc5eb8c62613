"""Generation failures the user can act on (bad payload, missing model, unsupported option): HTTP 400."""

from __future__ import annotations

from openesd.errors import BadRequest


class GenerationError(BadRequest):
    """A job cannot run as asked; the message names the bad value and, where useful, the valid ones."""

    code = "generation_error"


class PayloadError(GenerationError):
    """The WebUI payload is malformed or holds an out-of-range value."""

    code = "invalid_payload"


class ModelError(GenerationError):
    """A model file is missing, unreadable, unsafe, or of an architecture this worker cannot run."""

    code = "invalid_model"


class UnsupportedFeature(GenerationError):
    """The payload asks for something this worker does not do (unknown sampler, script, task)."""

    code = "unsupported"
