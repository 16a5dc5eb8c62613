"""The SDK against spec-shaped answers (tests/client/fake_esd.py) for endpoints, inferences,
datasets and trainings, plus the envelope rules; tests/cli/test_*_e2e.py run the same flows against a
real server."""

from __future__ import annotations

import json

import httpx
import pytest

from openesd.client import Client, ESDError, JobFailed, txt2img_payload
from tests.client.fake_esd import FakeESD


@pytest.fixture
def fake() -> FakeESD:
    return FakeESD()


@pytest.fixture
def client(fake) -> Client:
    return Client("http://testserver/prod/", "key", username="alice", transport=fake.transport())


def test_identity_headers_and_base_url_forms(fake):
    for base in ("http://testserver", "http://testserver/", "http://testserver/prod"):
        Client(base, "key", username="alice", transport=fake.transport()).endpoints.list()
    assert {r.url.path for r in fake.requests} == {"/prod/endpoints"}
    assert fake.requests[0].headers["username"] == "alice"
    Client("http://testserver", "key", token="oesd_abc", transport=fake.transport()).endpoints.list()
    assert fake.requests[-1].headers["authorization"] == "Bearer oesd_abc"
    assert "username" not in fake.requests[-1].headers


def test_errors_carry_the_status_and_the_servers_message(fake):
    with pytest.raises(ESDError) as refused:
        Client("http://testserver", "wrong", transport=fake.transport()).endpoints.list()
    assert (refused.value.status, refused.value.message) == (403, "Forbidden")
    with pytest.raises(ESDError) as missing:
        Client("http://testserver", "key", transport=fake.transport()).inferences.get("nope")
    assert (missing.value.status, missing.value.message) == (404, "inference with id nope not found")


def test_endpoints_create_list_all_pages_and_wait_for_in_service(client, fake):
    client.endpoints.create(name="one")
    client.endpoints.create(name="two", endpoint_type="Real-time")
    assert [e["endpoint_name"] for e in client.endpoints.list()] == ["esd-async-one", "esd-real-time-two"]
    ready = client.endpoints.wait_for("two", interval=0.01)
    assert ready["endpoint_status"] == "InService"
    with pytest.raises(ESDError, match="Cannot create already existing model"):
        client.endpoints.create(name="one")
    client.endpoints.delete(["esd-async-one"])
    assert json.loads(fake.requests[-1].content) == {"endpoint_name_list": ["esd-async-one"]}


def test_wait_for_an_endpoint_gives_up_at_the_timeout(client, fake):
    fake.polls_until_done = 10**6
    client.endpoints.create(name="slow")
    with pytest.raises(ESDError, match="endpoint slow still Creating after 0.05 s"):
        client.endpoints.wait_for("slow", timeout=0.05, interval=0.01)


def test_generate_async_sends_the_payload_inline_follows_progress_and_downloads(client, fake, tmp_path):
    seen = []
    result = client.generate(
        prompt="a cat",
        models={"Stable-diffusion": ["m.safetensors"]},
        steps=4,
        seed=7,
        out_dir=tmp_path / "out",
        progress=lambda job: seen.append(job.get("progress")),
    )
    job = fake.jobs[result.id]
    assert json.loads(job["payload"]) == txt2img_payload("a cat", steps=4, seed=7)
    assert [p["step"] for p in seen if p] == [1, 2]
    assert result.files == [tmp_path / "out" / f"{result.id}_image_0.png"]
    assert result.files[0].read_bytes() == b"\x89PNG fake image"


def test_real_time_generate_uploads_the_payload_and_tolerates_a_504_start(client, fake, tmp_path):
    fake.start_answer = 504
    result = client.generate(
        prompt="a dog", models={"Stable-diffusion": ["m.safetensors"]}, inference_type="Real-time", out_dir=tmp_path
    )
    assert json.loads(fake.jobs[result.id]["payload"])["prompt"] == "a dog"  # PUT to the signed URL
    assert [r.method for r in fake.requests][:3] == ["POST", "PUT", "PUT"]
    assert result.job["status"] == "succeed" and len(result.files) == 1


def test_a_failed_job_raises_with_the_workers_message(client, fake):
    fake.fail_jobs = True
    with pytest.raises(JobFailed, match="Sampler 'Nope' is not one of") as failed:
        client.generate(prompt="x", models={})
    assert failed.value.record["status"] == "failed"


def test_dataset_upload_from_a_kohya_folder(client, fake, tmp_path):
    concept = tmp_path / "my cats" / "10_cat"
    concept.mkdir(parents=True)
    (concept / "1.png").write_bytes(b"png-1")
    (concept / "1.txt").write_text("a cat")
    done = client.datasets.upload_folder(tmp_path / "my cats")
    assert done == {"datasetName": "my_cats", "status": "Enabled"}
    assert fake.objects["/objects/dataset/my_cats/10_cat/1.png"] == b"png-1"
    assert fake.datasets["my_cats"]["files"]["/objects/dataset/my_cats/10_cat/1.txt"] == "text"
    with pytest.raises(ESDError, match="has no kohya folder named <repeats>_<concept>"):
        client.datasets.upload_folder(concept.parent.parent)


def test_training_is_created_in_the_clients_shape_and_waited_for(client, fake):
    created = client.trainings.create(
        "base.safetensors", "my_cats", "cat_lora", epochs=2, config_params={"training": {"network_dim": 4}}
    )
    params = fake.trainings[created["id"]]["params"]
    assert params["training_params"] == {
        "training_instance_type": "ml.g5.2xlarge",
        "model": "base.safetensors",
        "dataset": "my_cats",
        "fm_type": "sd_1_5",
    }
    assert params["config_params"]["saving_arguments"] == {"output_name": "cat_lora", "save_every_n_epochs": 1}
    assert params["config_params"]["training_arguments"] == {"max_train_epochs": 2}
    assert params["config_params"]["training"] == {"network_dim": 4}
    losses = []
    done = client.trainings.wait_for(
        created["id"], interval=0.01, on_update=lambda t: losses.append((t.get("progress") or {}).get("loss"))
    )
    assert done["job_status"] == "Completed" and 0.25 in losses


def test_waiting_on_a_stopped_training_raises(client, fake):
    created = client.trainings.create("base.safetensors", "d", "out")
    client.trainings.stop(created["id"])
    with pytest.raises(JobFailed, match=f"training {created['id']} is Stopped"):
        client.trainings.wait_for(created["id"], interval=0.01)


def test_an_unreachable_server_is_an_esd_error_with_status_0():
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ESDError, match="cannot reach http://nowhere/prod") as error:
        Client("http://nowhere", "key", transport=httpx.MockTransport(refuse)).ping()
    assert error.value.status == 0
