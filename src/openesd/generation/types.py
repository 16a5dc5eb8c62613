"""What a generation task returns: the WebUI's response, with images as PNG bytes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# ESD checkpoint type ("Stable-diffusion", "Lora", "ESRGAN", "rembg", ...) -> local files.
ModelFiles = dict[str, list[Path]]


@dataclass
class GenerationResult:
    images: list[bytes]  # PNG bytes, in the WebUI's order
    parameters: dict | None = None
    info: str | None = None  # JSON string, as the WebUI returns it
    html_info: str | None = None
