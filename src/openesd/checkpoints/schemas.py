"""Request bodies and gateway models of the checkpoints routes (esd-api.md §6)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from openesd.api.validation import array, obj, string

CHECKPOINT_TYPES = [
    "Stable-diffusion",
    "embeddings",
    "Lora",
    "hypernetworks",
    "ControlNet",
    "VAE",
    "ESRGAN",
    "rembg",
    # Weights the worker's extensions read (docs/decisions.md, "Scripts and extensions"): the ControlNet
    # extension's annotator files (and IP-Adapter image encoders), ADetailer's ONNX detectors.
    "ControlNet-annotator",
    "ADetailer",
    # FLUX.1 / SD 3 text encoders as separate files (CLIP-L, CLIP-G, T5-XXL): docs/models.md.
    "text_encoder",
]
STATUSES = ("Initial", "Active", "Disabled")
IMPORT_EXTENSIONS = (".pt", ".pth", ".ckpt", ".safetensors", ".gguf", ".yaml", ".onnx", ".bin")


class UploadFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    filename: str
    parts_number: int


class CreateCheckpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    checkpoint_type: str
    params: dict | None = None
    filenames: list[UploadFile] | None = None
    urls: list[str] | None = None


class UpdateCheckpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str | None = None
    name: str | None = None
    multi_parts_tags: dict[str, list[dict]] | None = None


class DeleteCheckpoints(BaseModel):
    model_config = ConfigDict(extra="ignore")

    checkpoint_id_list: list[str]


CREATE_CHECKPOINT_SCHEMA = obj(
    {
        "checkpoint_type": {"type": "string", "enum": CHECKPOINT_TYPES},
        "filenames": array(
            obj(
                {
                    "filename": string(),
                    "parts_number": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                required=["filename", "parts_number"],
            ),
            1,
            20,
        ),
        "urls": array(string(), 1, 20),
        "params": obj({"message": {"type": "string"}, "creator": {"type": "string"}}),
    },
    required=["checkpoint_type"],
)
UPDATE_CHECKPOINT_SCHEMA = obj(
    {
        "status": string(),
        "name": string(maxLength=20, pattern="^[A-Za-z][A-Za-z0-9_-]*$"),
        "multi_parts_tags": {
            "type": "object",
            "additionalProperties": array(
                obj(
                    {"ETag": string(), "PartNumber": {"type": "integer", "minimum": 1, "maximum": 10000}},
                    required=["ETag", "PartNumber"],
                )
            ),
        },
    }
)
DELETE_CHECKPOINTS_SCHEMA = obj({"checkpoint_id_list": array(string(), 1, 100)}, required=["checkpoint_id_list"])
