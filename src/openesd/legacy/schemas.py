"""The request bodies of the legacy routes (esd-legacy-api.md), as published in `/openapi.json`.

Legacy handlers check their bodies themselves and answer in their route's family (§1.4), so these
schemas describe what clients send (required keys included) without being enforced by a gateway
stage; any JSON object reaches the handler. Unknown keys are allowed, as ESD's handlers read by key.
"""

from __future__ import annotations

from typing import Annotated, Any

from openesd.legacy.responses import legacy_body

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_OBJECT = {"type": "object"}
_UPLOADS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"filename": _STRING, "parts_number": {"type": "integer", "minimum": 1}},
        "required": ["filename", "parts_number"],
    },
}
_PART_TAGS = {
    "type": "object",
    "additionalProperties": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"ETag": _STRING, "PartNumber": {"type": "integer", "minimum": 1}},
            "required": ["ETag", "PartNumber"],
        },
    },
}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


# §5.1 form A (prepare, with `filters`) and form B (one-call: a WebUI payload plus routing keys).
INFERENCE_V2 = _obj(
    {
        "task_type": _STRING,
        "models": {"type": "object", "additionalProperties": _STRINGS},
        "filters": _OBJECT,
        "sagemaker_endpoint_name": _STRING,
        "user_id": _STRING,
        "prompt": _STRING,
    },
    ("task_type", "models"),
)
INFERENCE_API = _obj(
    {
        "task_type": _STRING,
        "models": {"type": "object", "additionalProperties": _STRINGS},
        "sagemaker_endpoint_name": _STRING,
        "prompt": _STRING,
    },
    ("task_type", "models", "sagemaker_endpoint_name"),
)
# §6.2, §6.3
CREATE_ENDPOINT = _obj(
    {
        "instance_type": _STRING,
        "initial_instance_count": {"type": ["string", "integer"]},
        "autoscaling_enabled": {"type": "boolean"},
        "assign_to_roles": _STRINGS,
        "creator": _STRING,
        "endpoint_name": _STRING,
    },
    ("instance_type", "initial_instance_count"),
)
DELETE_ENDPOINTS = _obj({"delete_endpoint_list": _STRINGS, "username": _STRING}, ("delete_endpoint_list",))
# POST /endpoints on the legacy mount takes either body (§3.2).
POST_ENDPOINTS = {"anyOf": [CREATE_ENDPOINT, DELETE_ENDPOINTS]}
# §7.2
MODEL_MERGE = _obj(
    {
        "primary_model_name": _STRING,
        "secondary_model_name": _STRING,
        "tertiary_model_name": _STRING,
        "interp_method": {"type": "string", "enum": ["No interpolation", "Weighted sum", "Add difference"]},
        "multiplier": {"type": "number", "minimum": 0, "maximum": 1},
        "save_as_half": {"type": "boolean"},
        "custom_name": _STRING,
        "checkpoint_format": {"type": "string", "enum": ["safetensors", "ckpt"]},
        "config_source": {"type": "integer", "minimum": 0, "maximum": 3},
        "bake_in_vae": _STRING,
        "discard_weights": _STRING,
        "save_metadata": {"type": "boolean"},
        "sagemaker_endpoint_name": _STRING,
    },
    ("primary_model_name",),
)
# §8.1, §8.2, §8.4
CREATE_CHECKPOINT = _obj(
    {"checkpoint_type": _STRING, "filenames": _UPLOADS, "params": _OBJECT}, ("checkpoint_type", "filenames", "params")
)
COMPLETE_CHECKPOINT = _obj(
    {"checkpoint_id": _STRING, "status": _STRING, "multi_parts_tags": _PART_TAGS},
    ("checkpoint_id", "status", "multi_parts_tags"),
)
IMPORT_CHECKPOINTS = _obj(
    {"checkpointType": _STRING, "modelUrl": _STRINGS, "params": _OBJECT}, ("checkpointType", "modelUrl", "params")
)
# §9.1, §9.2
CREATE_MODEL = _obj(
    {
        "model_type": _STRING,
        "name": _STRING,
        "filenames": _UPLOADS,
        "params": _OBJECT,
        "creator": _STRING,
        "checkpoint_id": _STRING,
    },
    ("model_type", "name", "params"),
)
COMPLETE_MODEL = _obj({"model_id": _STRING, "status": _STRING, "multi_parts_tags": _PART_TAGS}, ("model_id", "status"))
# §10.1, §10.2
CREATE_TRAIN = _obj(
    {"train_type": _STRING, "model_id": _STRING, "creator": _STRING, "params": _OBJECT, "filenames": _STRINGS},
    ("train_type", "model_id", "params"),
)
START_TRAIN = _obj({"train_job_id": _STRING, "status": _STRING}, ("train_job_id", "status"))
# §11.1, §11.2
CREATE_DATASET = _obj(
    {
        "dataset_name": _STRING,
        "params": _OBJECT,
        "creator": _STRING,
        "content": {
            "type": "array",
            "items": _obj({"filename": _STRING, "name": _STRING, "type": _STRING, "params": _OBJECT}, ("filename",)),
        },
    },
    ("dataset_name", "content"),
)
UPDATE_DATASET = _obj({"dataset_name": _STRING, "status": _STRING}, ("dataset_name", "status"))

InferenceV2Body = Annotated[dict, legacy_body(INFERENCE_V2)]
InferenceApiBody = Annotated[dict, legacy_body(INFERENCE_API)]
CreateEndpointBody = Annotated[dict, legacy_body(CREATE_ENDPOINT)]
DeleteEndpointsBody = Annotated[dict, legacy_body(DELETE_ENDPOINTS)]
PostEndpointsBody = Annotated[dict, legacy_body(POST_ENDPOINTS)]
ModelMergeBody = Annotated[dict, legacy_body(MODEL_MERGE)]
CreateCheckpointBody = Annotated[dict, legacy_body(CREATE_CHECKPOINT)]
CompleteCheckpointBody = Annotated[dict, legacy_body(COMPLETE_CHECKPOINT)]
ImportCheckpointsBody = Annotated[dict, legacy_body(IMPORT_CHECKPOINTS)]
CreateModelBody = Annotated[dict, legacy_body(CREATE_MODEL)]
CompleteModelBody = Annotated[dict, legacy_body(COMPLETE_MODEL)]
CreateTrainBody = Annotated[dict, legacy_body(CREATE_TRAIN)]
StartTrainBody = Annotated[dict, legacy_body(START_TRAIN)]
CreateDatasetBody = Annotated[dict, legacy_body(CREATE_DATASET)]
UpdateDatasetBody = Annotated[dict, legacy_body(UPDATE_DATASET)]
