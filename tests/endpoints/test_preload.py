"""`preload_models` of `POST /endpoints` (OpenESD): checked like a job's models, handed to the engine."""

from __future__ import annotations

from tests.checkpoints.conftest import upload_file
from tests.endpoints.conftest import create, listed, message
from tests.support.model_files import model_file_bytes


def test_preloaded_checkpoints_reach_the_engine_and_the_record(esd):
    data = model_file_bytes("checkpoint", salt="warm")
    checkpoint = upload_file(esd, "warm.safetensors", data, 1, "Stable-diffusion")
    answer = create(esd, endpoint_name="warm", preload_models=["warm.safetensors", "warm.safetensors"])
    assert answer.status_code == 202, answer.json()
    assert answer.json()["data"]["preload_models"] == ["warm.safetensors"]  # listed twice, loaded once
    (spec,) = esd.engine.deployed
    key = f"Stable-diffusion/checkpoint/custom/{checkpoint['id']}/warm.safetensors"
    assert spec.preload == [{"id": checkpoint["id"], "model_name": "warm.safetensors", "key": key}]
    assert listed(esd)[0]["preload_models"] == ["warm.safetensors"]


def test_an_unknown_or_wrong_typed_preload_model_is_refused_by_name(esd):
    upload_file(esd, "style.safetensors", model_file_bytes("lora", salt="style"), 1, "Lora")
    answer = create(esd, endpoint_name="cold", preload_models=["nope.safetensors", "style.safetensors"])
    assert answer.status_code == 400
    assert message(answer) == (
        "preload_models: checkpoint with name nope.safetensors, type Stable-diffusion is not found; "
        "checkpoint with name style.safetensors, type Stable-diffusion is not found"
    )
    assert not esd.engine.deployed and listed(esd) == []
