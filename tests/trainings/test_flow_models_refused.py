"""LoRA training for FLUX.1 and SD 3/3.5 is a later step: the API refuses it with a 400 naming the family."""

from __future__ import annotations

import pytest

from tests.checkpoints.conftest import upload_file
from tests.support.model_files import model_file_bytes
from tests.trainings.conftest import training_body

CREATE = "/prod/trainings"


@pytest.mark.parametrize(("family", "label"), [("flux", "FLUX.1"), ("sd3", "SD 3/3.5")])
def test_a_flux_or_sd3_base_model_is_refused_naming_the_family(trainer, engine, family, label):
    name = f"{family}_base.safetensors"
    upload_file(trainer, name, model_file_bytes("checkpoint", family), 1, "Stable-diffusion")
    response = trainer.post(CREATE, user="api", json=training_body("flow_lora", model=name, fm_type="sd_xl"))
    assert response.status_code == 400, response.json()
    assert response.json() == {
        "statusCode": 400,
        "message": f"Model {name} is a {label} model: LoRA training for {label} models is not supported yet; "
        "train on an SD 1.5 (fm_type sd_1_5) or SDXL (fm_type sd_xl) model",
    }
    assert engine.submitted == []
    listed = trainer.get("/prod/checkpoints", user="api", params={"checkpoint_type": "Lora"}).json()
    assert "flow_lora.safetensors" not in str(listed)  # no output checkpoint was reserved


@pytest.mark.parametrize(
    ("fm_type", "label"), [("flux", "FLUX.1"), ("FLUX.1-dev", "FLUX.1"), ("sd_3_5", "SD 3/3.5"), ("sd3", "SD 3/3.5")]
)
def test_a_flux_or_sd3_fm_type_is_refused_naming_the_family(trainer, engine, fm_type, label):
    response = trainer.post(CREATE, user="api", json=training_body(fm_type=fm_type))
    assert response.status_code == 400, response.json()
    assert response.json()["message"] == (
        f"Invalid fm_type {fm_type}, the valid values are sd_1_5 and sd_xl "
        f"(LoRA training for {label} models is not supported yet)"
    )
    assert engine.submitted == []


def test_an_sd15_base_model_still_trains(trainer, engine):
    response = trainer.post(CREATE, user="api", json=training_body())
    assert response.status_code == 201, response.json()
    assert len(engine.submitted) == 1
