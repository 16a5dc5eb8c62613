"""Image generation for WebUI payloads on diffusers (worker processes only; imports no torch itself)."""

from __future__ import annotations

from openesd.generation.errors import GenerationError
from openesd.generation.payload import parse_payload
from openesd.generation.types import GenerationResult, ModelFiles
from openesd.generation.worker import GenerationRequest, Generator, ProgressCallback

__all__ = [
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "ModelFiles",
    "ProgressCallback",
    "parse_payload",
]
