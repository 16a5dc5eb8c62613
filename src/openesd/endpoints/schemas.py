"""Request bodies and gateway models of the endpoints routes (esd-api.md §7)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from openesd.api.validation import array, obj, string

ENDPOINT_TYPES = ["Real-time", "Serverless", "Async"]
SUPPORTED_TYPES = ("Real-time", "Async")
COOL_DOWN_TIMES = ["15 minutes", "1 hour", "6 hours", "1 day"]
MAX_PRELOAD = 4  # an instance's model cache holds a few checkpoints; more would evict the first ones again


class CreateEndpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    endpoint_type: str
    instance_type: str
    initial_instance_count: int | float
    autoscaling_enabled: bool
    assign_to_roles: list[str]
    creator: str | None = None
    endpoint_name: str | None = None
    custom_docker_image_uri: str | None = None
    custom_extensions: str | None = None
    min_instance_number: int | float | None = None
    max_instance_number: int | float | None = None
    # OpenESD: Stable-diffusion checkpoint names each instance loads before it is InService (ESD ignores it).
    preload_models: list[str] | None = None


class DeleteEndpoints(BaseModel):
    model_config = ConfigDict(extra="ignore")

    endpoint_name_list: list[str]


CREATE_ENDPOINT_SCHEMA = obj(
    {
        "endpoint_type": {"type": "string", "enum": ENDPOINT_TYPES},
        "instance_type": {"type": "string"},
        "initial_instance_count": {"type": "number", "minimum": 1},
        "autoscaling_enabled": {"type": "boolean"},
        "assign_to_roles": array({"type": "string"}, 1, 10),
        "creator": {"type": "string"},
        "endpoint_name": {"type": "string", "maxLength": 20},
        "custom_docker_image_uri": {"type": "string"},
        "custom_extensions": {"type": "string"},
        "min_instance_number": {"type": "number", "minimum": 0},
        "max_instance_number": {"type": "number"},
        "cool_down_time": {"type": "string", "enum": COOL_DOWN_TIMES},
        "preload_models": array({"type": "string"}, 0, MAX_PRELOAD),
    },
    required=[
        "endpoint_type",
        "instance_type",
        "initial_instance_count",
        "autoscaling_enabled",
        "assign_to_roles",
        "creator",
    ],
)
DELETE_ENDPOINTS_SCHEMA = obj(
    {"endpoint_name_list": array(string(), 1, 10), "username": {"type": "string"}},
    required=["endpoint_name_list"],
)
