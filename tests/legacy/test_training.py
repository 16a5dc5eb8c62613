"""§9 dreambooth models, §10 trainings mapped onto 1.5.0 LoRA trainings, and §1.7 tar archives, called as
the v1.3 WebUI calls them and checked against the 1.5.0 view of the same records."""

from __future__ import annotations

import io
import tarfile

from tests.checkpoints.conftest import put_part, upload_file
from tests.datasets.conftest import png
from tests.legacy.test_datasets import HEX_API, legacy_dataset
from tests.support.model_files import model_file_bytes

MODEL_BYTES = model_file_bytes(salt="pretend safetensors weights")
CREATE_MODEL_PARAMS = {
    "create_model_params": {
        "new_model_name": "hanmodel",
        "ckpt_path": "base.safetensors",
        "from_hub": False,
        "extract_ema": False,
        "is_512": True,
    }
}


def tar_of(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


WEBUI_ARCHIVE = tar_of(
    {"models/Stable-diffusion/base.safetensors": MODEL_BYTES, "models/Stable-diffusion/base.yaml": b"model: {}"}
)


def post_model(client, name="hanmodel", filenames=None, checkpoint_id="", creator="api"):
    return client.post(
        "/model",
        json={
            "model_type": "Stable-diffusion",
            "name": name,
            "filenames": filenames or [],
            "params": CREATE_MODEL_PARAMS,
            "creator": creator,
            "checkpoint_id": checkpoint_id,
        },
    ).json()


def legacy_model(client, archive: bytes = WEBUI_ARCHIVE, file_name: str = "base.safetensors.tar") -> tuple[dict, dict]:
    """POST /model with one file, PUT its part, PUT /model Creating: (the POST answer, the PUT answer)."""
    created = post_model(client, filenames=[{"filename": file_name, "parts_number": 1}])
    assert created["statusCode"] == 200, created
    uploaded = put_part(client, created["s3PresignUrl"][file_name][0], archive)
    done = client.put(
        "/model",
        json={
            "model_id": created["job"]["id"],
            "status": "Creating",
            "multi_parts_tags": {file_name: [{"ETag": uploaded.headers["ETag"], "PartNumber": 1}]},
        },
    ).json()
    return created, done


def modern_checkpoints(client) -> list[dict]:
    return client.get("/prod/checkpoints", user="api", params={"per_page": 100}).json()["data"]["checkpoints"]


def objects(client, prefix: str) -> dict[str, bytes]:
    store = client.http.app.state.store
    return {o.key[len(prefix) :]: store.get_bytes(o.key) for o in store.list(prefix)}


# --- §9 models and §1.7 archives ---------------------------------------------------------------
def test_a_model_uploaded_as_a_webui_tar_becomes_a_usable_checkpoint(legacy):
    created, done = legacy_model(legacy)
    job = created["job"]
    assert (job["status"], job["model_type"], job["params"]) == ("Initial", "Stable-diffusion", CREATE_MODEL_PARAMS)
    assert done == {
        "statusCode": 200,
        "job": {
            "output_path": job["s3_base"],
            "id": job["id"],
            "endpointName": None,
            "jobStatus": "Creating",
            "jobType": "Stable-diffusion",
        },
    }
    [checkpoint] = modern_checkpoints(legacy)
    assert checkpoint["status"] == "Active" and checkpoint["name"] == ["base.safetensors", "base.yaml"]
    folder = f"Stable-diffusion/checkpoint/custom/{checkpoint['id']}/"
    assert objects(legacy, folder) == {"base.safetensors": MODEL_BYTES, "base.yaml": b"model: {}"}
    models = legacy.get("/models", headers=HEX_API).json()
    assert models["statusCode"] == 200
    [model] = models["models"]
    assert (model["id"], model["model_name"], model["status"]) == (job["id"], "hanmodel", "Complete")
    assert isinstance(model["created"], float) and model["params"]["create_model_params"]["is_512"] is True
    assert model["output_s3_location"].endswith(f"/Stable-diffusion/model/hanmodel/{job['id']}/output")
    assert legacy.get("/models", params={"status": "Initial"}).json() == {"statusCode": 200, "models": []}


def test_archive_members_never_reach_outside_the_checkpoint(legacy, tmp_path):
    archive = tar_of(
        {"../../../escape.txt": b"outside", "/abs/../../model.safetensors": MODEL_BYTES},
        links={"link.safetensors": "/etc/passwd"},
    )
    legacy_model(legacy, archive, "model.tar")
    [checkpoint] = modern_checkpoints(legacy)
    assert checkpoint["name"] == ["model.safetensors"]
    assert objects(legacy, f"Stable-diffusion/checkpoint/custom/{checkpoint['id']}/") == {
        "model.safetensors": MODEL_BYTES
    }
    assert not list(tmp_path.rglob("escape.txt")) and not list(tmp_path.rglob("link.safetensors"))


def test_an_archive_without_a_model_is_refused_and_nothing_changes(legacy):
    created, done = legacy_model(legacy, tar_of({"readme.txt": b"no weights"}), "empty.tar")
    assert done == {
        "statusCode": 500,
        "error": "empty.tar is a tar archive without a model file (.safetensors, .ckpt, .pt, .pth, .bin) in it",
    }
    [checkpoint] = modern_checkpoints(legacy)
    assert checkpoint["status"] == "Initial" and checkpoint["name"] == ["empty.tar"]
    assert legacy.get("/models").json()["models"][0]["status"] == "Initial"


def test_model_errors_use_the_legacy_literals(legacy):
    assert legacy.get("/models").json() == {"statusCode": 200, "models": []}
    assert post_model(legacy) == {"statusCode": 400, "errMsg": "either checkpoint_id or filenames need to be provided"}
    assert post_model(legacy, checkpoint_id="nope") == {
        "statusCode": 500,
        "error": "create model ckpt with id nope is not found",
    }
    assert post_model(legacy, creator="ghost") == {"statusCode": 400, "errMsg": 'user: "ghost" not exist'}
    pending = legacy.post(
        "/prod/checkpoints",
        user="api",
        json={
            "checkpoint_type": "Stable-diffusion",
            "params": {},
            "filenames": [{"filename": "p.safetensors", "parts_number": 1}],
        },
    )
    pending_id = pending.json()["data"]["checkpoint"]["id"]
    assert post_model(legacy, checkpoint_id=pending_id) == {
        "status": 400,
        "error": f"checkpoint with id ({pending_id}) is not Active to use",
    }
    assert legacy.put("/model", json={"model_id": "nope", "status": "Creating"}).json() == {
        "statusCode": 200,
        "error": "create model with id nope is not found",
    }
    model_id = post_model(legacy, filenames=[{"filename": "m.safetensors", "parts_number": 1}])["job"]["id"]
    assert legacy.put("/model", json={"model_id": model_id, "status": "Initial"}).json() == {
        "statusCode": 500,
        "error": "please create a new model creation job for this, not allowed overwrite old model creation job",
    }
    bad_type = legacy.post("/model", json={"model_type": "Lora", "name": "x", "params": {}, "filenames": []}).json()
    assert bad_type["statusCode"] == 500 and "'Lora' is not supported" in bad_type["error"]


def test_an_existing_checkpoint_can_be_reused_by_its_owners_only(legacy):
    checkpoint = upload_file(legacy, "shared.safetensors", MODEL_BYTES, 1, "Stable-diffusion")
    reused = post_model(legacy, checkpoint_id=checkpoint["id"])
    assert reused["statusCode"] == 200 and reused["s3PresignUrl"] == {}
    legacy.post("/prod/roles", user="api", json={"role_name": "trainer", "permissions": ["train:all"]})
    legacy.post("/prod/users", user="api", json={"username": "tom", "password": "pw", "roles": ["trainer"]})
    assert post_model(legacy, checkpoint_id=checkpoint["id"], creator="tom") == {
        "status": 400,
        "error": f"checkpoint with id ({checkpoint['id']}) is not allowed to use by user tom",
    }


# --- §10 trainings -----------------------------------------------------------------------------
def train_body(model_id: str, dataset: str = "hanportrait", **config) -> dict:
    return {
        "train_type": "Stable-diffusion",
        "model_id": model_id,
        "creator": "api",
        "params": {
            "training_params": {
                "data_tar_list": [f"s3://bucket/dataset/{dataset}"],
                "class_data_tar_list": [""],
                "training_instance_type": "cpu",
            },
            "config_params": {
                "concepts_list": [
                    {
                        "instance_prompt": "hanportraittest123",
                        "class_prompt": "",
                        "instance_data_dir": f"s3://bucket/dataset/{dataset}",
                    }
                ],
                "model_dir": "models/dreambooth/hanmodel",
                "model_name": "hanlora",
                "num_train_epochs": 3,
                "use_lora": True,
                "lora_unet_rank": 8,
                "revision": "",
                **config,
            },
        },
    }


def ready_model_and_dataset(client) -> str:
    created, _ = legacy_model(client)
    legacy_dataset(client, "hanportrait", {"1.png": png(seed=1), "2.png": png(seed=2)})
    return created["job"]["id"]


def test_post_then_put_train_runs_a_lora_training_on_the_same_id(legacy, tmp_path):
    model_id = ready_model_and_dataset(legacy)
    created = legacy.post("/train", json=train_body(model_id)).json()
    job = created["job"]
    assert created["statusCode"] == 200 and created["s3PresignUrl"] is None
    assert job["status"] == "Initial" and job["trainType"] == "Stable-diffusion"
    assert job["input_location"].endswith(f"/{job['id']}/input")
    assert legacy.get(f"/prod/trainings/{job['id']}", user="api").json()["data"]["job_status"] == "Initial"
    assert legacy.get("/trains", headers=HEX_API).json() == {
        "statusCode": 200,
        "trainJobs": [
            {
                "id": job["id"],
                "modelName": "hanmodel",
                "status": "Initial",
                "trainType": "Stable-diffusion",
                "created": legacy.get("/trains").json()["trainJobs"][0]["created"],
                "sagemakerTrainName": None,
            }
        ],
    }
    assert legacy.engine.trainings == []  # created, not started
    reserved = next(c for c in modern_checkpoints(legacy) if c["id"] == job["id"])

    started = legacy.put("/train", json={"train_job_id": job["id"], "status": "Training"}).json()
    assert started["statusCode"] == 200 and started["job"]["id"] == job["id"]
    assert started["job"]["status"] == "Training" and started["job"]["trainType"] == "Stable-diffusion"
    [spec] = legacy.engine.trainings
    assert (spec.id, spec.model_type, spec.model["model_name"]) == (job["id"], "sd_1_5", "base.safetensors")
    assert spec.config["saving_arguments"] == {"output_name": "hanlora", "save_every_n_epochs": 3}
    arguments = spec.config["training_arguments"]
    assert (arguments["max_train_epochs"], arguments["network_dim"], arguments["network_alpha"]) == (3, 8, 8)
    assert (arguments["unet_lr"], arguments["text_encoder_lr"], arguments["resolution"]) == (1e-4, 5e-5, "512,512")
    assert objects(legacy, spec.dataset_prefix) == {
        "1_hanportraittest123/1.png": png(seed=1),
        "1_hanportraittest123/1.txt": b"hanportraittest123",
        "1_hanportraittest123/2.png": png(seed=2),
        "1_hanportraittest123/2.txt": b"hanportraittest123",
    }

    assert_trainer_reads(objects(legacy, spec.dataset_prefix), tmp_path, "hanportraittest123")

    modern = legacy.get(f"/prod/trainings/{job['id']}", user="api").json()["data"]
    assert modern["job_status"] == "Training" and modern["params"]["training_params"]["dataset_name"] == "hanportrait"
    output = next(c for c in modern_checkpoints(legacy) if c["id"] == job["id"])
    assert (output["type"], output["status"], output["name"]) == ("Lora", "Initial", ["hanlora.safetensors"])
    assert output["created"] == reserved["created"]  # the output checkpoint POST stored, kept by the start
    again = legacy.put("/train", json={"train_job_id": job["id"], "status": "Training"}).json()
    assert again["job"]["status"] == "Training" and len(legacy.engine.trainings) == 1
    [listed] = legacy.get("/trains", params={"status": "Training", "types": "Stable-diffusion"}).json()["trainJobs"]
    assert listed["sagemakerTrainName"].startswith("kohya-")
    assert legacy.get("/trains", params={"status": "Complete"}).json() == {"statusCode": 200, "trainJobs": []}


def assert_trainer_reads(files: dict[str, bytes], folder, caption: str) -> None:
    """The trainer's own dataset reader accepts the laid-out folder, every image with the prompt as caption."""
    from openesd.trainer.dataset import scan

    for name, data in files.items():
        (folder / "dataset" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "dataset" / name).write_bytes(data)
    dataset = scan(folder / "dataset", ".txt")
    assert len(dataset.items) == 2 and {item.caption for item in dataset.items} == {caption}
    assert dataset.warnings == []  # every image has its caption file


def test_an_sdxl_base_model_trains_as_sd_xl(legacy, tmp_path):
    from tests.support import tiny_models

    weights = tiny_models.write_tiny_sdxl_checkpoint(tmp_path / "xl.safetensors").read_bytes()
    created, done = legacy_model(legacy, tar_of({"models/Stable-diffusion/xl.safetensors": weights}), "xl.tar")
    assert done["statusCode"] == 200
    legacy_dataset(legacy, "hanportrait", {"1.png": png(seed=1), "2.png": png(seed=2)})
    job = legacy.post("/train", json=train_body(created["job"]["id"])).json()["job"]
    assert legacy.put("/train", json={"train_job_id": job["id"], "status": "Training"}).json()["statusCode"] == 200
    [spec] = legacy.engine.trainings
    assert (spec.model_type, spec.model["model_name"]) == ("sd_xl", "xl.safetensors")


def test_a_start_that_cannot_map_changes_nothing(legacy):
    created, _ = legacy_model(legacy)
    legacy_dataset(legacy, "notyet", {"1.png": png()}, enable=False)
    job = legacy.post("/train", json=train_body(created["job"]["id"], dataset="notyet")).json()["job"]
    refused = legacy.put("/train", json={"train_job_id": job["id"], "status": "Training"}).json()
    assert refused["statusCode"] == 500 and refused["error"].startswith("dataset notyet is Initialed")
    assert legacy.get(f"/prod/trainings/{job['id']}", user="api").json()["data"]["job_status"] == "Initial"
    assert legacy.engine.trainings == []
    # the output name stays reserved by the waiting job
    clash = legacy.post("/train", json=train_body(created["job"]["id"], dataset="notyet")).json()
    assert clash == {
        "statusCode": 500,
        "error": "hanlora.safetensors already exists, please use another or rename/delete exists",
    }


def test_training_errors_use_the_legacy_literals(legacy):
    assert legacy.get("/trains").json() == {"statusCode": 200, "trainJobs": []}
    assert legacy.post("/train", json=train_body("nope")).json() == {
        "statusCode": 500,
        "error": "model with id nope is not found",
    }
    waiting = post_model(legacy, filenames=[{"filename": "w.safetensors", "parts_number": 1}])["job"]["id"]
    assert legacy.post("/train-api/train", json=train_body(waiting)).json() == {
        "statusCode": 500,
        "error": f"model {waiting} is in Initial state, not valid to be used for train",
    }
    model_id = ready_model_and_dataset(legacy)
    assert legacy.post("/train", json=train_body(model_id, use_lora=False)).json() == {
        "statusCode": 500,
        "error": "only LoRA training is supported: set config_params.use_lora to true",
    }
    assert legacy.put("/train", json={"train_job_id": "x", "status": "Stopped"}).json() == {
        "statusCode": 200,
        "msg": "not implemented for train job status Stopped",
    }
    assert legacy.put("/train", json={"train_job_id": "nope", "status": "Training"}).json() == {
        "statusCode": 500,
        "error": "no such train job with id(nope)",
    }
    job = legacy.post("/train-api/train", json=train_body(model_id, num_train_epochs="many")).json()["job"]
    bad = legacy.put("/train", json={"train_job_id": job["id"], "status": "Training"}).json()
    assert bad == {"statusCode": 500, "error": "config_params.num_train_epochs must be a number, got 'many'"}
    legacy.post("/prod/roles", user="api", json={"role_name": "none", "permissions": ["checkpoint:list"]})
    legacy.post("/prod/users", user="api", json={"username": "nat", "password": "pw", "roles": ["none"]})
    assert legacy.get("/trains", user="nat").json() == {"statusCode": "400", "error": "user has no permission to train"}
    assert legacy.get("/models", user="nat").json() == {"statusCode": "400", "error": "user has no permission to train"}
    assert legacy.post("/train", json={**train_body(model_id), "creator": "nat"}).json() == {
        "statusCode": 400,
        "errMsg": "user nat has not permission to create a train job",
    }


def test_put_checkpoint_unpacks_the_webui_tar_stored_under_the_model_name(legacy):
    name = "base.safetensors"
    created = legacy.post(
        "/checkpoint",
        json={
            "checkpoint_type": "Stable-diffusion",
            "params": {"creator": "api"},
            "filenames": [{"filename": name, "parts_number": 1}],
        },
    ).json()
    uploaded = put_part(legacy, created["s3PresignUrl"][name][0], WEBUI_ARCHIVE)
    done = legacy.put(
        "/checkpoint",
        json={
            "checkpoint_id": created["checkpoint"]["id"],
            "status": "Active",
            "multi_parts_tags": {name: [{"ETag": uploaded.headers["ETag"], "PartNumber": 1}]},
        },
    )
    assert done.json()["statusCode"] == 200
    [checkpoint] = modern_checkpoints(legacy)
    assert checkpoint["status"] == "Active" and checkpoint["name"] == [name, "base.yaml"]
    assert objects(legacy, f"Stable-diffusion/checkpoint/custom/{checkpoint['id']}/") == {
        name: MODEL_BYTES,
        "base.yaml": b"model: {}",
    }
