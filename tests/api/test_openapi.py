"""`/openapi.json` publishes the request body the gateway checks for every route that takes one (issue 13)."""

from __future__ import annotations

import pytest

from openesd.checkpoints import schemas as checkpoints
from openesd.datasets import schemas as datasets
from openesd.endpoints import schemas as endpoints
from openesd.inferences import schemas as inferences
from openesd.legacy import schemas as legacy
from openesd.roles import schemas as roles
from openesd.tokens import schemas as tokens
from openesd.trainings import schemas as trainings
from openesd.users import schemas as users

ESD_BODIES = {
    ("post", "/roles"): roles.UPSERT_ROLE_SCHEMA,
    ("delete", "/roles"): roles.DELETE_ROLES_SCHEMA,
    ("post", "/users"): users.UPSERT_USER_SCHEMA,
    ("delete", "/users"): users.DELETE_USERS_SCHEMA,
    ("post", "/tokens"): tokens.CREATE_TOKEN_SCHEMA,
    ("post", "/checkpoints"): checkpoints.CREATE_CHECKPOINT_SCHEMA,
    ("put", "/checkpoints/{checkpoint_id}"): checkpoints.UPDATE_CHECKPOINT_SCHEMA,
    ("delete", "/checkpoints"): checkpoints.DELETE_CHECKPOINTS_SCHEMA,
    ("post", "/endpoints"): endpoints.CREATE_ENDPOINT_SCHEMA,
    ("delete", "/endpoints"): endpoints.DELETE_ENDPOINTS_SCHEMA,
    ("post", "/inferences"): inferences.CREATE_INFERENCE_SCHEMA,
    ("delete", "/inferences"): inferences.DELETE_INFERENCES_SCHEMA,
    ("post", "/datasets"): datasets.CREATE_DATASET_SCHEMA,
    ("put", "/datasets/{dataset_name}"): datasets.UPDATE_DATASET_SCHEMA,
    ("delete", "/datasets"): datasets.DELETE_DATASETS_SCHEMA,
    ("post", "/trainings"): trainings.CREATE_TRAINING_SCHEMA,
    ("delete", "/trainings"): trainings.DELETE_TRAININGS_SCHEMA,
}
LEGACY_BODIES = {
    ("post", "/inference/v2"): legacy.INFERENCE_V2,
    ("post", "/inference-api/inference"): legacy.INFERENCE_API,
    ("post", "/inference/deploy-sagemaker-endpoint"): legacy.CREATE_ENDPOINT,
    ("post", "/inference/delete-sagemaker-endpoint"): legacy.DELETE_ENDPOINTS,
    ("post", "/inference/run-model-merge"): legacy.MODEL_MERGE,
    ("post", "/checkpoint"): legacy.CREATE_CHECKPOINT,
    ("put", "/checkpoint"): legacy.COMPLETE_CHECKPOINT,
    ("post", "/upload_checkpoint"): legacy.IMPORT_CHECKPOINTS,
    ("post", "/model"): legacy.CREATE_MODEL,
    ("put", "/model"): legacy.COMPLETE_MODEL,
    ("post", "/train"): legacy.CREATE_TRAIN,
    ("post", "/train-api/train"): legacy.CREATE_TRAIN,
    ("put", "/train"): legacy.START_TRAIN,
    ("post", "/dataset"): legacy.CREATE_DATASET,
    ("put", "/dataset"): legacy.UPDATE_DATASET,
}
# The AUTOMATIC1111 API (sdapi/): FastAPI's own models, as the WebUI publishes them (its 422 is FastAPI's).
WEBUI_BODIES = {
    ("post", "/sdapi/v1/txt2img"): "Txt2ImgRequest",
    ("post", "/sdapi/v1/img2img"): "Img2ImgRequest",
    ("post", "/sdapi/v1/extra-single-image"): "ExtrasSingleRequest",
    ("post", "/sdapi/v1/extra-batch-images"): "ExtrasBatchRequest",
    ("post", "/sdapi/v1/png-info"): "PngInfoRequest",
    ("post", "/rembg"): "RembgRequest",
}
WEBUI_OPTIONS = {("post", "/sdapi/v1/options"): {"additionalProperties": True, "type": "object", "title": "Changes"}}
LEGACY_MOUNT_ONLY = {
    ("post", "/endpoints"): legacy.POST_ENDPOINTS,
    ("delete", "/endpoints"): legacy.DELETE_ENDPOINTS,
}


def _expected_bodies() -> dict[tuple[str, str], dict]:
    expected = {}
    for prefix in ("", "/prod"):
        expected |= {(method, prefix + path): schema for (method, path), schema in ESD_BODIES.items()}
    for prefix in ("", "/prod", "/legacy"):
        expected |= {(method, prefix + path): schema for (method, path), schema in LEGACY_BODIES.items()}
    expected |= {(method, "/legacy" + path): schema for (method, path), schema in LEGACY_MOUNT_ONLY.items()}
    expected |= {key: {"$ref": f"#/components/schemas/{name}"} for key, name in WEBUI_BODIES.items()}
    return expected | WEBUI_OPTIONS


@pytest.fixture
def document(esd) -> dict:
    response = esd.http.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_route_that_takes_a_body_publishes_the_gateway_schema(document):
    published = {
        (method, path): operation["requestBody"]["content"]["application/json"]["schema"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    assert published == _expected_bodies()
    assert len([key for key in published if not key[1].startswith(("/prod", "/legacy"))]) == 17 + 15 + 7


def test_a_published_body_is_json_and_optional_as_at_esds_gateway(document):
    body = document["paths"]["/roles"]["post"]["requestBody"]
    # An empty body counts as `{}` and gets the gateway's validation message, not a framework error.
    assert body.get("required", False) is False
    assert list(body["content"]) == ["application/json"]
    assert body["content"]["application/json"]["schema"]["required"] == ["role_name", "permissions"]
