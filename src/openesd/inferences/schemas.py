"""Request bodies and gateway models of the inferences routes (esd-api.md §8)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from openesd.api.validation import array, obj, string
from openesd.webhooks.schemas import WEBHOOK_SCHEMA, Webhook

DIFFUSION_TASKS = ("txt2img", "img2img")
EXTRAS_TASKS = ("extra-single-image", "extra-batch-images", "rembg")
# Model types the extras tasks read from the node; other types in their `models` are ignored (§8.2).
EXTRAS_MODEL_TYPES = {"extra-single-image": "ESRGAN", "extra-batch-images": "ESRGAN", "rembg": "rembg"}
# `cancelled` is OpenESD's own terminal status (PUT /inferences/{id}/cancel); ESD knows the first four.
TERMINAL = ("succeed", "failed", "cancelled")
STATUSES = ("created", "inprogress", *TERMINAL)
MAX_PREVIEW_EVERY = 1000


class CreateInference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task_type: str
    inference_type: str
    models: dict
    sagemaker_endpoint_name: str | None = None
    payload_string: str | None = None
    # OpenESD's addition: a live preview every N model calls (0: none); checked by the service, which names it.
    preview_every: Any = None
    webhook: Webhook | None = None  # OpenESD's addition (webhooks/)


class DeleteInferences(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inference_id_list: list[str]


CREATE_INFERENCE_SCHEMA = obj(
    {
        "task_type": string(),
        "inference_type": {"type": "string", "enum": ["Real-time", "Serverless", "Async"]},
        "models": obj({"embeddings": {"type": "array"}}),
        "sagemaker_endpoint_name": {"type": "string"},
        "payload_string": {"type": "string"},
        "custom_extensions": {"type": "string"},
        "webhook": WEBHOOK_SCHEMA,
    },
    required=["task_type", "inference_type", "models"],
)
DELETE_INFERENCES_SCHEMA = obj({"inference_id_list": array(string(), 1, 100)}, required=["inference_id_list"])
