"""Image generation for WebUI payloads on diffusers (worker processes only; imports no torch itself)."""

from __future__ import annotations

from openesd.errors import GenerationError
from openesd.generation.generator import GenerationRequest, Generator, ProgressCallback
from openesd.generation.payload.settings import parse_payload
from openesd.generation.types import GenerationResult, ModelFiles

__all__ = [
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "ModelFiles",
    "ProgressCallback",
    "parse_payload",
]
