"""Training tests: apps with a recording engine (API rules), and helpers for the real flow."""

from __future__ import annotations

import time

import pytest

from openesd.api.deps import get_engine
from tests.api.conftest import ESDClient, esd, make_client  # noqa: F401  (shared fixtures)
from tests.checkpoints.conftest import upload_file
from tests.datasets.conftest import kohya_files, upload_dataset
from tests.support.model_files import model_file_bytes


class RecordingEngine:
    """Takes trainings without running them: the API's rules are tested without worker processes."""

    def __init__(self, capacity: dict[str, int] | None = None):
        self.submitted, self.stopped = [], []
        self._capacity = capacity or {"cpu": 2, "ml.g5.2xlarge": 2}

    def capacity(self) -> dict[str, int]:
        return dict(self._capacity)

    def submit_training(self, spec) -> None:
        self.submitted.append(spec)

    def stop_training(self, training_id: str) -> None:
        self.stopped.append(training_id)


def training_body(
    output_name: str = "sks_cat",
    model: str = "base.safetensors",
    dataset: str = "cats",
    fm_type: str = "sd_1_5",
    instance_type: str = "cpu",
    **config,
) -> dict:
    return {
        "lora_train_type": "kohya",
        "params": {
            "training_params": {
                "training_instance_type": instance_type,
                "model": model,
                "dataset": dataset,
                "fm_type": fm_type,
            },
            "config_params": {
                "saving_arguments": {"output_name": output_name, "save_every_n_epochs": 1},
                "training_arguments": {"max_train_epochs": 1},
                **config,
            },
        },
    }


@pytest.fixture
def engine() -> RecordingEngine:
    return RecordingEngine()


@pytest.fixture
def trainer(esd, engine) -> ESDClient:
    """An app whose engine only records, with a base model `base.safetensors` and an Enabled dataset `cats`."""
    esd.http.app.dependency_overrides[get_engine] = lambda: engine
    upload_file(esd, "base.safetensors", model_file_bytes(), 1, "Stable-diffusion")
    upload_dataset(esd, "cats", kohya_files(1))
    return esd


TRAINING_WAIT_S = 240
# Small and fast on a CPU, strong enough that the LoRA visibly changes a 1-step image.
TINY = {
    "training": {
        "resolution": "32,32",
        "enable_bucket": False,
        "network_dim": 4,
        "network_alpha": 4,
        "unet_lr": 5e-2,
        "text_encoder_lr": 2e-2,
        "optimizer_type": "AdamW",
        "lr_scheduler": "constant",
        "seed": 3,
        "train_batch_size": 1,
        "mixed_precision": "no",
        "save_precision": "float",
    }
}
ENDED = ("Completed", "Failed", "Fail", "Stopped")


def wait_training(
    esd, training_id: str, until=lambda t: t["job_status"] in ENDED, timeout: float = TRAINING_WAIT_S
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        data = esd.get(f"/prod/trainings/{training_id}", user="api").json()["data"]
        if until(data):
            return data
        assert time.monotonic() < deadline, f"training {training_id} is still {data['job_status']}: {data}"
        time.sleep(0.1)
