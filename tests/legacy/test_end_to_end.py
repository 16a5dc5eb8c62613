"""End to end on real worker processes and tiny models: the one-call legacy inference, and a merged
checkpoint that loads in the worker and generates. One app for the module (workers start slowly)."""

from __future__ import annotations

import io
import time

import pytest

from tests.checkpoints.conftest import get_url, upload_file
from tests.inferences.conftest import open_app
from tests.api.conftest import ESDClient

torch = pytest.importorskip("torch")
WAIT_S = 240


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from safetensors.torch import load_file, save

    from tests.support import tiny_models

    folder = tmp_path_factory.mktemp("tiny")
    tiny_models.write_tiny_sd15_checkpoint(folder / "tiny-a.safetensors")
    a = load_file(folder / "tiny-a.safetensors")
    generator = torch.Generator().manual_seed(7)
    b = {
        k: (v + 0.05 * torch.randn(v.shape, generator=generator, dtype=v.dtype)) if v.is_floating_point() else v
        for k, v in a.items()
    }
    client = open_app(tmp_path_factory.mktemp("server"))
    esd = ESDClient(client)
    esd.models = {"tiny-a.safetensors": a, "tiny-b.safetensors": b}
    upload_file(esd, "tiny-a.safetensors", (folder / "tiny-a.safetensors").read_bytes(), 2, "Stable-diffusion")
    upload_file(esd, "tiny-b.safetensors", save(b), 2, "Stable-diffusion")
    created = esd.post("/legacy/endpoints", json={"instance_type": "cpu", "initial_instance_count": "1"}).json()
    esd.endpoint = created["data"]["endpoint_name"]
    wait_for(lambda: _legacy_endpoint(esd)["endpoint_status"] != "Creating")
    assert _legacy_endpoint(esd)["endpoint_status"] == "InService", _legacy_endpoint(esd)
    yield esd
    client.__exit__(None, None, None)


def _legacy_endpoint(esd) -> dict:
    listed = esd.get("/legacy/endpoints").json()["endpoints"]
    return next(e for e in listed if e["endpoint_name"] == esd.endpoint)


def wait_for(done, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while not (result := done()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)
    return result


def one_call(esd, model: str) -> dict:
    """The deployed one-call route, then the WebUI's polling of the legacy job view."""
    started = esd.post(
        "/inference-api/inference",
        json={
            "task_type": "txt2img",
            "models": {"Stable-diffusion": [model]},
            "sagemaker_endpoint_name": esd.endpoint,
            "prompt": "a red fox",
            "seed": 42,
            "steps": 1,
            "width": 64,
            "height": 64,
            "sampler_name": "Euler",
        },
    ).json()
    assert started["status"] == 200, started
    job_id = started["inference"]["inference_id"]

    def finished():
        job = esd.get("/inference/get-inference-job", params={"jobID": job_id}).json()
        return job if job["status"] in ("succeed", "failed") else None

    job = wait_for(finished)
    assert job["status"] == "succeed", job.get("sagemakerRaw")
    return job


def png_sizes(esd, urls: list[str]) -> list[tuple[int, int]]:
    from PIL import Image

    return [Image.open(io.BytesIO(get_url(esd, url).content)).size for url in urls]


def test_one_call_inference_images_reachable_through_both_apis(server):
    job = one_call(server, "tiny-a.safetensors")
    legacy_urls = server.get(
        "/inference/get-inference-job-image-output", params={"jobID": job["InferenceJobId"]}
    ).json()
    assert len(legacy_urls) == len(job["image_names"]) == 1
    modern = server.get(f"/prod/inferences/{job['InferenceJobId']}").json()["data"]
    assert modern["status"] == "succeed" and modern["image_names"] == job["image_names"]
    assert png_sizes(server, legacy_urls) == png_sizes(server, modern["img_presigned_urls"]) == [(64, 64)]


def test_merged_checkpoint_equals_the_weighted_sum_and_generates(server):
    from safetensors.torch import load

    started = server.post(
        "/inference/run-model-merge",
        json={
            "primary_model_name": "tiny-a.safetensors",
            "secondary_model_name": "tiny-b.safetensors",
            "multiplier": 0.3,
        },
    ).json()
    name = started["output_name"]
    assert name == "0.7(tiny-a) + 0.3(tiny-b).safetensors"

    def merged_record():
        listed = server.get("/legacy/checkpoints", params={"types": "Stable-diffusion"}).json()["checkpoints"]
        record = next(c for c in listed if c["id"] == started["checkpoint_id"])
        return record if record["status"] != "Initial" else None

    record = wait_for(merged_record)
    assert record["status"] == "Active", record["params"].get("error")
    merged = load(server.http.app.state.store.get_bytes(f"Stable-diffusion/checkpoint/custom/{record['id']}/{name}"))
    a, b = server.models["tiny-a.safetensors"], server.models["tiny-b.safetensors"]
    floats = [k for k, v in a.items() if v.is_floating_point()]
    assert set(merged) == set(a)
    assert all(torch.allclose(merged[k], 0.7 * a[k] + 0.3 * b[k], atol=1e-5) for k in floats)
    assert not all(torch.equal(merged[k], a[k]) for k in floats)
    job = one_call(server, name)
    assert png_sizes(
        server, server.get("/inference/get-inference-job-image-output", params={"jobID": job["InferenceJobId"]}).json()
    ) == [(64, 64)]
