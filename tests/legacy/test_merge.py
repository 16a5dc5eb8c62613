"""§7.2 model merge: the merge math (modeltools/merge.py) and the route that runs it through the engine."""

from __future__ import annotations

import time

import pytest

from openesd.api.deps import get_engine
from tests.legacy.conftest import RecordingEngine
from tests.legacy.test_endpoints_checkpoints import legacy_upload

torch = pytest.importorskip("torch")
from safetensors.torch import load, load_file, save, save_file  # noqa: E402

from openesd.errors import ModelError  # noqa: E402
from openesd.modeltools.merge import MergeOptions, merge_checkpoints  # noqa: E402


def tensors(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "model.diffusion_model.w": torch.randn(4, 3, generator=generator),
        "first_stage_model.decoder.b": torch.randn(5, generator=generator),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(4),
    }


@pytest.fixture
def abc(tmp_path):
    paths = []
    for seed, name in ((1, "a.safetensors"), (2, "b.safetensors"), (3, "c.safetensors")):
        save_file(tensors(seed), tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def test_weighted_sum_is_a_times_one_minus_m_plus_b_times_m(abc, tmp_path):
    a, b, _ = abc
    out = load_file(merge_checkpoints(a, tmp_path / "o.safetensors", MergeOptions(multiplier=0.3), b))
    key = "model.diffusion_model.w"
    expected = 0.7 * load_file(a)[key] + 0.3 * load_file(b)[key]
    assert torch.allclose(out[key], expected, atol=1e-6) and not torch.allclose(out[key], load_file(a)[key])
    ids = "cond_stage_model.transformer.text_model.embeddings.position_ids"
    assert torch.equal(out[ids], load_file(a)[ids])


def test_add_difference_is_a_plus_b_minus_c_times_m_with_a_ckpt_input(abc, tmp_path):
    a, b, c = abc
    ckpt = tmp_path / "c.ckpt"
    torch.save({"state_dict": load_file(c)}, ckpt)
    out = load_file(merge_checkpoints(a, tmp_path / "o.safetensors", MergeOptions("Add difference", 0.5), b, ckpt))
    key = "first_stage_model.decoder.b"
    A, B, C = (load_file(p)[key] for p in abc)
    assert torch.allclose(out[key], A + (B - C) * 0.5, atol=1e-6)


def test_no_interpolation_converts_to_half_bakes_the_vae_and_discards(abc, tmp_path):
    a = abc[0]
    save_file({"decoder.b": torch.full((5,), 2.0)}, tmp_path / "vae.safetensors")
    options = MergeOptions(
        "No interpolation", save_as_half=True, discard_weights="diffusion_model", metadata={"sd_merge_recipe": "{}"}
    )
    path = merge_checkpoints(a, tmp_path / "o.safetensors", options, vae=tmp_path / "vae.safetensors")
    out = load_file(path)
    assert set(out) == {
        "first_stage_model.decoder.b",
        "cond_stage_model.transformer.text_model.embeddings.position_ids",
    }
    assert out["first_stage_model.decoder.b"].dtype == torch.float16
    assert torch.equal(out["first_stage_model.decoder.b"], torch.full((5,), 2.0, dtype=torch.float16))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == {"sd_merge_recipe": "{}"}


def test_a_pickle_with_code_is_refused_and_missing_inputs_are_named(abc, tmp_path):
    import pickle

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps(print))
    with pytest.raises(ModelError, match="pickled code is never run"):
        merge_checkpoints(abc[0], tmp_path / "o.safetensors", MergeOptions(), evil)
    with pytest.raises(ModelError, match="Failed: Missing Tertiary Model"):
        merge_checkpoints(abc[0], tmp_path / "o.safetensors", MergeOptions("Add difference"), abc[1])


def upload_model(client, name: str, seed: int, kind: str = "Stable-diffusion") -> None:
    legacy_upload(client, name, save(tensors(seed)), kind)


def wait_checkpoint(client, checkpoint_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        listed = client.get("/legacy/checkpoints").json()["checkpoints"]
        record = next(c for c in listed if c["id"] == checkpoint_id)
        if record["status"] != "Initial":
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.2)


@pytest.fixture
def legacy(make_client):
    """An app with its real engine (not the conftest's recording one): merges run in its worker process."""
    return make_client(allow_private_url_imports=True, legacy_upload_wait_seconds=10)


def test_merge_route_validates_with_the_webui_texts(legacy):
    upload_model(legacy, "a.safetensors", 1)
    cases = [
        ({}, "Failed: Missing Primary Model"),
        ({"primary_model_name": "a.safetensors"}, "Failed: Missing Secondary Model"),
        (
            {
                "primary_model_name": "a.safetensors",
                "secondary_model_name": "a.safetensors",
                "interp_method": "Add difference",
            },
            "Failed: Missing Tertiary Model",
        ),
        (
            {"primary_model_name": "a.safetensors", "secondary_model_name": "zzz.safetensors"},
            "checkpoint with name zzz.safetensors, type Stable-diffusion is not found",
        ),
        (
            {"primary_model_name": "a.safetensors", "interp_method": "No interpolation", "multiplier": 2},
            "multiplier must be a number from 0 to 1, got 2",
        ),
        (
            {"primary_model_name": "a.safetensors", "interp_method": "No interpolation", "custom_name": "a"},
            "a.safetensors already exists, please use another or rename/delete exists",
        ),
    ]
    for body, message in cases:
        response = legacy.post("/inference/run-model-merge", json=body)
        assert (response.status_code, response.json()) == (400, {"detail": message}), body


def test_merge_route_registers_an_active_checkpoint_with_the_merged_tensors(legacy):
    upload_model(legacy, "a.safetensors", 1)
    upload_model(legacy, "b.safetensors", 2)
    started = legacy.post(
        "/legacy/inference/run-model-merge",
        json={
            "primary_model_name": "a.safetensors [0123abcd]",
            "secondary_model_name": "b.safetensors",
            "tertiary_model_name": "",
        },
    )
    assert started.status_code == 200
    body = started.json()
    assert body["output_name"] == "0.7(a) + 0.3(b).safetensors" and body["status"] == "inprogress"
    assert body["merge_id"] == body["checkpoint_id"] and body["primary_model_name"] == "a.safetensors [0123abcd]"
    record = wait_checkpoint(legacy, body["checkpoint_id"])
    assert record["status"] == "Active", record["params"].get("error")
    assert record["params"]["merge"]["multiplier"] == 0.3 and record["name"] == [body["output_name"]]
    key = f"Stable-diffusion/checkpoint/custom/{record['id']}/{body['output_name']}"
    merged = load(legacy.http.app.state.store.get_bytes(key))
    w = "model.diffusion_model.w"
    assert torch.allclose(merged[w], 0.7 * tensors(1)[w] + 0.3 * tensors(2)[w], atol=1e-6)
    modern = legacy.get("/prod/checkpoints", user="api", params={"per_page": 50}).json()["data"]["checkpoints"]
    assert any(c["id"] == record["id"] and c["status"] == "Active" and c["hash"] for c in modern)


def test_a_merge_interrupted_by_a_restart_runs_again_when_the_server_starts(make_client):
    first = make_client(allow_private_url_imports=True, legacy_upload_wait_seconds=10)
    upload_model(first, "a.safetensors", 1)
    upload_model(first, "b.safetensors", 2)
    first.http.app.dependency_overrides[get_engine] = RecordingEngine  # stops with the server before it merges
    body = first.post(
        "/legacy/inference/run-model-merge",
        json={"primary_model_name": "a.safetensors", "secondary_model_name": "b.safetensors", "multiplier": 0.5},
    ).json()
    listed = first.get("/legacy/checkpoints").json()["checkpoints"]
    assert next(c for c in listed if c["id"] == body["checkpoint_id"])["status"] == "Initial"
    first.http.__exit__(None, None, None)

    restarted = make_client(allow_private_url_imports=True)
    record = wait_checkpoint(restarted, body["checkpoint_id"])
    assert record["status"] == "Active", record["params"].get("error")
    assert "merge_job" not in record["params"]
    merged = load(
        restarted.http.app.state.store.get_bytes(
            f"Stable-diffusion/checkpoint/custom/{record['id']}/{body['output_name']}"
        )
    )
    w = "model.diffusion_model.w"
    assert torch.allclose(merged[w], 0.5 * tensors(1)[w] + 0.5 * tensors(2)[w], atol=1e-6)
