"""The `text_encoder` checkpoint type (FLUX.1 / SD 3 CLIP-L, CLIP-G, T5-XXL files): verified by its keys."""

from __future__ import annotations

import pytest

from tests.checkpoints.test_verify import record, send
from tests.support import flow_files


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("text-encoders")
    flow_files.write_tiny_t5(folder / "t5xxl_fp16.safetensors")
    flow_files.write_tiny_clip_l(folder / "clip_l.safetensors")
    flow_files.write_tiny_flux_checkpoint(folder / "flux1-dev.safetensors", layout="bfl")
    return {path.stem: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.parametrize(("stem", "family"), [("t5xxl_fp16", "t5"), ("clip_l", "clip")])
def test_a_text_encoder_file_is_accepted_with_its_kind(esd, files, stem, family):
    response, checkpoint_id = send(esd, f"{stem}.safetensors", files[stem], "text_encoder", parts=2)
    assert response.status_code == 200, response.json()
    item = record(esd, checkpoint_id)
    assert item["status"] == "Active" and item["type"] == "text_encoder"
    assert item["params"]["model_family"] == family


def test_a_text_encoder_uploaded_as_a_checkpoint_is_refused_naming_the_right_type(esd, files):
    response, checkpoint_id = send(esd, "t5xxl_fp16.safetensors", files["t5xxl_fp16"], "Stable-diffusion")
    assert response.status_code == 400
    message = response.json()["message"]
    assert "uploaded as Stable-diffusion but its keys are a text encoder (T5 text encoder)'s" in message
    assert message.endswith("upload it as text_encoder")
    assert record(esd, checkpoint_id)["status"] == "Disabled"


def test_a_flux_transformer_uploaded_as_a_text_encoder_is_refused(esd, files):
    response, _ = send(esd, "flux1-dev.safetensors", files["flux1-dev"], "text_encoder")
    assert response.status_code == 400
    message = response.json()["message"]
    assert "(FLUX.1)'s" in message and message.endswith("upload it as Stable-diffusion")
