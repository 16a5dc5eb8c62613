"""The WebUI's settings (`/sdapi/v1/options`) per user: GET shows every setting the worker honours with the
value the caller's jobs get; POST stores the caller's own defaults, checked as `override_settings` is."""

from __future__ import annotations

from typing import Any

from openesd.errors import BadRequest
from openesd.generation.payload.options import HONOURED, IGNORED, REFUSED, read_override_settings
from openesd.sdapi.catalog import Catalog
from openesd.sdapi.repository import WebUIRepository

# A1111's defaults for the settings a WebUI API job reads beside the picture ones (live previews).
PREVIEW_DEFAULTS = {"live_previews_enable": True, "show_progress_every_n_steps": 10}
# What a job's `override_settings` may take from the stored settings: the picture ones, never saving or UI.
JOB_KEYS = frozenset(HONOURED) | frozenset(REFUSED)


class WebUIOptionsService:
    def __init__(self, repository: WebUIRepository, catalog: Catalog):
        self.repository = repository
        self.catalog = catalog

    def stored(self, username: str) -> dict[str, Any]:
        return self.repository.options(username)

    def view(self, username: str) -> dict[str, Any]:
        """Every honoured and refused setting at the value the caller's jobs get, the model as its title."""
        values: dict[str, Any] = {key: option.default for key, option in HONOURED.items()}
        values |= {key: default for key, (default, _) in REFUSED.items()}
        values |= PREVIEW_DEFAULTS | self.stored(username)
        if not values.get("sd_model_checkpoint"):
            files = self.catalog.files("Stable-diffusion")
            values["sd_model_checkpoint"] = files[0].title if files else None
        checkpoint = values["sd_model_checkpoint"]
        known = {f.title: f for f in self.catalog.files("Stable-diffusion")}
        values["sd_checkpoint_hash"] = known[checkpoint].sha256 if checkpoint in known else None
        return values

    def update(self, username: str, changes: dict[str, Any]) -> None:
        """Store `changes` over the caller's settings; a value a job could not run is refused (400 naming it)."""
        unknown = sorted(key for key in changes if key not in JOB_KEYS and key not in IGNORED)
        if unknown:
            raise BadRequest(f"unknown WebUI setting(s): {', '.join(unknown)}")
        read_override_settings({key: value for key, value in changes.items() if key in JOB_KEYS})
        stored = self.stored(username) | changes
        if changes.get("sd_model_checkpoint"):
            stored["sd_model_checkpoint"] = self.catalog.find("Stable-diffusion", changes["sd_model_checkpoint"]).title
        if changes.get("sd_vae") not in (None, "Automatic", "None"):
            stored["sd_vae"] = self.catalog.find("VAE", changes["sd_vae"]).name
        if "show_progress_every_n_steps" in changes:
            previews_every(changes["show_progress_every_n_steps"])
        self.repository.save_options(username, stored)

    def job_settings(self, username: str) -> dict[str, Any]:
        """The stored settings a job's `override_settings` starts from (the payload's own win)."""
        return {key: value for key, value in self.stored(username).items() if key in JOB_KEYS}

    def preview_every(self, username: str) -> int:
        """Model calls between live previews for the caller's jobs (0: none), from the WebUI's two settings."""
        values = PREVIEW_DEFAULTS | self.stored(username)
        return previews_every(values["show_progress_every_n_steps"]) if values["live_previews_enable"] else 0


def previews_every(value: Any) -> int:
    """`show_progress_every_n_steps`: -1 (the WebUI's "every step") is 1; 0 is none; at most 1000."""
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= 1000:
        raise BadRequest(f"show_progress_every_n_steps must be an integer from -1 to 1000, got {value!r}")
    return 1 if value == -1 else value
