"""`/trainings` rules and messages (esd-api.md §10, §18) with an engine that only records."""

from __future__ import annotations

import tomllib

import pytest

from openesd.trainings.reporter import TrainingReporter
from tests.trainings.conftest import training_body

CREATE = "/prod/trainings"


def create(esd, body: dict, user: str = "api"):
    return esd.post(CREATE, user=user, json=body)


def test_create_answers_201_stores_the_toml_and_an_initial_lora_checkpoint(trainer, engine):
    response = create(trainer, training_body(training={"network_dim": 8, "xformers": True, "max_token_length": 150}))
    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    tid = data["id"]
    assert data["status"] == "Training" and float(data["created"]) > 0
    tp = data["params"]["training_params"]
    assert "model" not in tp and "dataset" not in tp
    assert tp["s3_model_path"].endswith("/base.safetensors") and tp["s3_data_path"].endswith("dataset/cats")
    assert tp["s3_toml_path"].endswith(f"kohya/train/{tid}/input/kohya_config_cloud.toml")
    assert data["params"]["training_type"] == "kohya"
    assert data["params"]["ignored_keys"] == [
        "training.log_prefix",
        "training.logging_dir",
        "training.max_token_length",
    ]
    assert data["input_location"].endswith(f"kohya/train/{tid}/input")
    assert data["output_location"].endswith(f"kohya/train/{tid}/output")
    store = trainer.http.app.state.store
    toml = tomllib.loads(store.get_bytes(f"kohya/train/{tid}/input/kohya_config_cloud.toml").decode())
    assert toml["training"]["network_dim"] == 8 and toml["training"]["optimizer_type"] == "AdamW8bit"
    assert toml["saving_arguments"] == {"output_name": "sks_cat", "save_every_n_epochs": 1}
    [spec] = engine.submitted
    assert (spec.id, spec.model_type, spec.dataset_prefix, spec.instance_type) == (
        tid,
        "sd_1_5",
        "dataset/cats/",
        "cpu",
    )
    lora = [
        c for c in trainer.get("/prod/checkpoints", user="api").json()["data"]["checkpoints"] if c["type"] == "Lora"
    ]
    assert [(c["id"], c["name"], c["status"]) for c in lora] == [(tid, ["sks_cat.safetensors"], "Initial")]
    got = trainer.get(f"/prod/trainings/{tid}", user="api").json()["data"]
    assert (got["id"], got["checkpoint_id"], got["job_status"], got["model_id"], got["train_type"]) == (
        tid,
        tid,
        "Training",
        "kohya",
        "Stable-diffusion",
    )
    assert got["timestamp"] == data["created"] and got["progress"] is None


def test_the_documented_request_shape_is_accepted_too(trainer, engine):
    store = trainer.http.app.state.store
    model_path = create(trainer, training_body("first")).json()["data"]["params"]["training_params"]["s3_model_path"]
    body = {
        "lora_train_type": "KOHYA",
        "params": {
            "training_params": {
                "training_instance_type": "cpu",
                "s3_model_path": model_path,
                "s3_data_path": store.uri("dataset/cats"),
            },
            "config_params": {
                "training": {"output_name": "documented", "max_train_epochs": 2, "optimizer_type": "AdamW"}
            },
        },
    }
    response = create(trainer, body)
    assert response.status_code == 201, response.json()
    assert engine.submitted[-1].config["training"]["output_name"] == "documented"
    assert response.json()["data"]["params"]["training_params"]["fm_type"] == "sd_1_5"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda b: b.update(lora_train_type="dreambooth"),
            "Invalid lora train type: dreambooth, the valid value is kohya.",
        ),
        (lambda b: b["params"]["training_params"].pop("model"), "Missing training_params.model"),
        (lambda b: b["params"]["training_params"].update(dataset=""), "Missing training_params.dataset"),
        (
            lambda b: b["params"]["config_params"]["saving_arguments"].pop("output_name"),
            "Missing config_params.saving_arguments.output_name",
        ),
        (
            lambda b: b["params"]["config_params"].pop("training_arguments"),
            "Missing config_params.training_arguments.max_train_epochs",
        ),
        (lambda b: b["params"]["training_params"].update(model="nope.safetensors"), "Model not found"),
        (lambda b: b["params"]["training_params"].update(dataset="nope"), "Dataset not found"),
        (
            lambda b: b["params"]["training_params"].update(fm_type="sd_3"),
            "Invalid fm_type sd_3, the valid values are sd_1_5 and sd_xl",
        ),
        (
            lambda b: b["params"]["config_params"]["saving_arguments"].update(output_name="base"),
            "base.safetensors already exists, please use another or rename/delete exists",
        ),
        (
            lambda b: b["params"]["config_params"].update(training={"optimizer_type": "Adam9"}),
            "optimizer_type 'Adam9' is not supported; use one of AdamW, AdamW8bit",
        ),
        (
            lambda b: b["params"]["config_params"]["saving_arguments"].update(output_name="a/b"),
            "output_name 'a/b' must be a file name without folders",
        ),
        (
            lambda b: b["params"]["training_params"].update(training_instance_type="ml.p4d.24xlarge"),
            "'ml.p4d.24xlarge for training job usage' is 0 Instances",
        ),
    ],
)
def test_bad_requests_get_the_catalogue_messages(trainer, engine, change, message):
    body = training_body()
    change(body)
    response = create(trainer, body)
    assert response.status_code == 400, response.json()
    assert message in response.json()["message"]
    assert engine.submitted == []


def test_gateway_model_and_permission(trainer):
    missing = trainer.post(CREATE, user="api", json={"lora_train_type": "kohya"})
    assert missing.json() == {"statusCode": 400, "message": '[object has missing required properties (["params"])]'}
    assert trainer.post(CREATE, json=training_body()).status_code == 401
    trainer.post("/prod/roles", user="api", json={"role_name": "viewer", "permissions": ["checkpoint:list"]})
    trainer.post("/prod/users", user="api", json={"username": "bob", "password": "pw", "roles": ["viewer"]})
    assert create(trainer, training_body(), user="bob").json() == {
        "statusCode": 403,
        "message": "User bob has no permissions: ['train:all']",
    }


def test_a_dataset_must_be_enabled_and_output_names_stay_unique(trainer):
    trainer.put("/prod/datasets/cats", user="api", json={"status": "Disabled"})
    refused = create(trainer, training_body())
    assert refused.status_code == 400 and "dataset cats is Disabled: set it to Enabled" in refused.json()["message"]
    trainer.put("/prod/datasets/cats", user="api", json={"status": "Enabled"})
    assert create(trainer, training_body("twice")).status_code == 201
    again = create(trainer, training_body("twice"))
    assert again.json()["message"] == "twice.safetensors already exists, please use another or rename/delete exists"


def test_the_quota_counts_running_trainings(trainer):
    assert create(trainer, training_body("one")).status_code == 201
    assert create(trainer, training_body("two")).status_code == 201
    third = create(trainer, training_body("three"))
    assert third.status_code == 400 and "ResourceLimitExceeded" in third.json()["message"]
    assert "'cpu for training job usage' is 2 Instances" in third.json()["message"]


def test_reports_drive_status_progress_and_the_output_checkpoint(trainer):
    tid = create(trainer, training_body()).json()["data"]["id"]
    app = trainer.http.app
    reporter = TrainingReporter(app.state.sessionmaker, app.state.store)
    reporter.training_status(tid, "Downloading")
    assert trainer.get(f"/prod/trainings/{tid}", user="api").json()["data"]["job_status"] == "Downloading"
    reporter.training_progress(
        tid, {"step": 1, "total_steps": 2, "epoch": 1, "total_epochs": 2, "loss": 0.5, "eta_seconds": 3.0}
    )
    progress = trainer.get(f"/prod/trainings/{tid}", user="api").json()["data"]["progress"]
    assert progress == {"step": 1, "total_steps": 2, "epoch": 1, "total_epochs": 2, "loss": 0.5, "eta_seconds": 3.0}
    files = ["sks_cat.safetensors", "sks_cat-000001.safetensors"]
    reporter.training_completed(tid, {"files": files, "hashes": {f: "ab" * 32 for f in files}, "steps": 2})
    data = trainer.get(f"/prod/trainings/{tid}", user="api").json()["data"]
    assert data["job_status"] == "Completed" and data["params"]["resp"]["raw_resp"]["files"] == files
    reporter.training_failed(tid, "late")  # a finished training ignores late reports
    assert trainer.get(f"/prod/trainings/{tid}", user="api").json()["data"]["job_status"] == "Completed"
    [lora] = [c for c in trainer.get("/prod/checkpoints", user="api").json()["data"]["checkpoints"] if c["id"] == tid]
    assert lora["status"] == "Active" and lora["name"] == files and lora["hash"] == "ab" * 32


def test_no_output_file_is_fail_and_failures_keep_the_reason(trainer):
    app = trainer.http.app
    reporter = TrainingReporter(app.state.sessionmaker, app.state.store)
    empty = create(trainer, training_body("empty")).json()["data"]["id"]
    reporter.training_completed(empty, {"files": [], "hashes": {}})
    assert trainer.get(f"/prod/trainings/{empty}", user="api").json()["data"]["job_status"] == "Fail"
    broken = create(trainer, training_body("broken")).json()["data"]["id"]
    reporter.training_failed(broken, "base model 'x' is a sd1 checkpoint, not sd_xl")
    data = trainer.get(f"/prod/trainings/{broken}", user="api").json()["data"]
    assert data["job_status"] == "Failed"
    assert data["params"]["resp"]["error_msg"] == "base model 'x' is a sd1 checkpoint, not sd_xl"


def test_list_get_stop_and_delete(trainer, engine):
    ids = [create(trainer, training_body(name)).json()["data"]["id"] for name in ("one", "two")]
    listed = trainer.get("/prod/trainings", user="api", params={"limit": 1}).json()["data"]
    assert [t["id"] for t in listed["trainings"]] == [ids[1]] and listed["last_evaluated_key"]
    item = listed["trainings"][0]
    assert (item["status"], item["trainType"], item["modelName"]) == (
        "Training",
        "Stable-diffusion",
        "base.safetensors",
    )
    assert item["sagemakerTrainName"].startswith("kohya-")
    assert trainer.get("/prod/trainings/nope", user="api").json() == {
        "statusCode": 404,
        "message": "Job with id nope not found",
    }
    assert trainer.put("/prod/trainings/nope/stop", user="api").status_code == 404
    stop = trainer.put(f"/prod/trainings/{ids[0]}/stop", user="api")
    assert stop.status_code == 200 and engine.stopped == [ids[0]]
    app = trainer.http.app
    TrainingReporter(app.state.sessionmaker, app.state.store).training_stopped(ids[0])
    assert trainer.get(f"/prod/trainings/{ids[0]}", user="api").json()["data"]["job_status"] == "Stopped"
    again = trainer.put(f"/prod/trainings/{ids[0]}/stop", user="api")
    assert again.status_code == 400 and again.json()["message"].startswith(f"training {ids[0]} is already Stopped")
    bad = trainer.delete(CREATE, user="api", json={})
    assert (
        "object has missing required properties" in bad.json()["message"]
        and "training_id_list" in bad.json()["message"]
    )
    store = app.state.store
    assert store.list(f"kohya/train/{ids[1]}/")
    assert trainer.delete(CREATE, user="api", json={"training_id_list": [ids[1], "nope"]}).status_code == 204
    assert engine.stopped == [ids[0], ids[1]]
    assert store.list(f"kohya/train/{ids[1]}/") == []
    assert trainer.get(f"/prod/trainings/{ids[1]}", user="api").status_code == 404
    names = [c["name"] for c in trainer.get("/prod/checkpoints", user="api").json()["data"]["checkpoints"]]
    assert ["two.safetensors"] in names and ["base.safetensors"] in names  # output and base model are kept


def test_a_restart_fails_the_trainings_that_were_running(trainer, make_client):
    tid = create(trainer, training_body()).json()["data"]["id"]
    restarted = make_client()  # boots on the same database and data folder
    data = restarted.get(f"/prod/trainings/{tid}", user="api").json()["data"]
    assert data["job_status"] == "Failed"
    assert data["params"]["resp"]["error_msg"].startswith("the server stopped while this training was running")
