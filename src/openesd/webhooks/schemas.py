"""The `webhook` field a job may carry (OpenESD's addition to `POST /inferences` and `POST /trainings`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

EVENTS = ("queued", "scheduled", "step", "preview", "image", "succeeded", "failed", "cancelled")
DEFAULT_EVENTS = ["succeeded", "failed", "cancelled"]
JOB_KINDS = ("inference", "training")


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS))


# The JSON schema the gateway checks the field against; the rules on the URL are in service.py.
WEBHOOK_SCHEMA = {
    "type": "object",
    "properties": {
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string", "enum": list(EVENTS)}},
    },
    "required": ["url"],
}
