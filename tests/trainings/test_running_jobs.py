"""Ending a running training: stop, delete and a server shutdown each end its worker process."""

from __future__ import annotations

import time

from tests.api.conftest import ESDClient
from tests.checkpoints.conftest import upload_file
from tests.datasets.conftest import kohya_files, upload_dataset
from tests.inferences.conftest import open_app
from tests.trainings.conftest import TINY, training_body, wait_training


def start_long(esd, name: str) -> str:
    body = training_body(name, "tiny-sd15.safetensors", "cats", "sd_1_5", **TINY)
    body["params"]["config_params"]["training_arguments"]["max_train_epochs"] = 500
    created = esd.post("/prod/trainings", user="api", json=body)
    assert created.status_code == 201, created.json()
    return created.json()["data"]["id"]


def test_stop_delete_and_shutdown_end_running_trainings(tmp_path):
    from tests.support import tiny_models

    model = tiny_models.write_tiny_sd15_checkpoint(tmp_path / "tiny-sd15.safetensors")
    client = open_app(tmp_path / "server")
    esd = ESDClient(client)
    upload_file(esd, model.name, model.read_bytes(), 1, "Stable-diffusion")
    upload_dataset(esd, "cats", kohya_files(2), prefix="2_cat")
    runner = client.app.state.runtime.execution._trainings
    stopped, deleted, interrupted = (start_long(esd, name) for name in ("long_a", "long_b", "long_c"))
    for tid in (stopped, deleted, interrupted):
        wait_training(esd, tid, lambda t: (t["progress"] or {}).get("step", 0) >= 1)

    assert esd.put(f"/prod/trainings/{stopped}/stop", user="api").status_code == 200
    data = wait_training(esd, stopped)
    assert data["job_status"] == "Stopped" and data["params"]["resp"]["error_msg"] == "stopped on request"
    assert esd.delete("/prod/trainings", user="api", json={"training_id_list": [deleted]}).status_code == 204
    assert esd.get(f"/prod/trainings/{deleted}", user="api").status_code == 404
    deadline = time.monotonic() + 60
    while len(runner.running()) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runner.running() == [interrupted]  # the stopped and the deleted workers ended

    client.__exit__(None, None, None)  # shutting down ends the last one, and the row says why
    assert runner.running() == []
    client = open_app(tmp_path / "server")
    try:
        data = ESDClient(client).get(f"/prod/trainings/{interrupted}", user="api").json()["data"]
        assert data["job_status"] == "Failed"
        assert data["params"]["resp"]["error_msg"].startswith("the server shut down while this training was running")
    finally:
        client.__exit__(None, None, None)
