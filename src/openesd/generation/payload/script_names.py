"""The selectable scripts (`script_name`) this worker runs, by title; generation/scripts/ holds the scripts."""

from __future__ import annotations

from typing import Any

from openesd.errors import UnsupportedFeature

SUPPORTED = ("X/Y/Z plot", "Prompt matrix", "Prompts from file or textbox")


def script_key(name: Any) -> str:
    """The script's title in lower case (the WebUI matches titles ignoring case); others fail listing the valid."""
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in {title.lower() for title in SUPPORTED}:
        raise UnsupportedFeature(f"script_name {name!r} is not supported; supported: {', '.join(SUPPORTED)}")
    return key
