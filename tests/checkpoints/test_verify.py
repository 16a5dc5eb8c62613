"""Verified uploads: a model file becomes `Active` only whole, valid for its extension and of the declared type."""

from __future__ import annotations

import io
import json
import struct

import pytest

from openesd.modelfiles import torchfiles
from tests.checkpoints.conftest import put_part
from tests.checkpoints.test_import import import_, wait_for
from tests.support.model_files import model_file_bytes, safetensors_bytes, torch_file_bytes


@pytest.fixture(params=["local", "s3"])
def store_esd(request, make_client):
    if request.param == "local":
        return make_client()
    return make_client(
        object_store_url="s3://openesd-test/verify?create_bucket=true",
        s3_endpoint_url=request.getfixturevalue("s3_endpoint"),
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )


def start(esd, name: str, parts: int = 1, checkpoint_type: str = "Stable-diffusion") -> tuple[str, list[str]]:
    created = esd.post(
        "/prod/checkpoints",
        user="api",
        json={
            "checkpoint_type": checkpoint_type,
            "params": {},
            "filenames": [{"filename": name, "parts_number": parts}],
        },
    )
    assert created.status_code == 201, created.json()
    return created.json()["data"]["checkpoint"]["id"], created.json()["data"]["s3PresignUrl"][name]


def send(esd, name: str, data: bytes, checkpoint_type: str = "Stable-diffusion", parts: int = 1):
    """Upload `data` in `parts` parts and complete it: the answer of the completing PUT, and the id."""
    checkpoint_id, urls = start(esd, name, parts, checkpoint_type)
    size = -(-len(data) // parts)
    tags = [
        {"ETag": put_part(esd, url, data[i * size : (i + 1) * size]).headers["ETag"], "PartNumber": i + 1}
        for i, url in enumerate(urls)
    ]
    return esd.put(
        f"/prod/checkpoints/{checkpoint_id}", json={"status": "Active", "multi_parts_tags": {name: tags}}
    ), checkpoint_id


def record(esd, checkpoint_id: str) -> dict:
    items = esd.get("/prod/checkpoints", user="api", params={"per_page": 100}).json()["data"]["checkpoints"]
    return next(c for c in items if c["id"] == checkpoint_id)


def test_completing_part_1_of_2_is_refused_and_the_client_can_send_both(esd):
    data = model_file_bytes(padding=20_000)
    checkpoint_id, urls = start(esd, "two.safetensors", parts=2)
    tags = [
        {"ETag": put_part(esd, url, chunk).headers["ETag"], "PartNumber": number}
        for number, (url, chunk) in enumerate(zip(urls, (data[:10_000], data[10_000:])), start=1)
    ]
    path = f"/prod/checkpoints/{checkpoint_id}"
    refused = esd.put(path, json={"status": "Active", "multi_parts_tags": {"two.safetensors": tags[:1]}})
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert "two.safetensors" in message and "missing part(s) 2" in message
    assert record(esd, checkpoint_id)["status"] == "Initial"
    done = esd.put(path, json={"status": "Active", "multi_parts_tags": {"two.safetensors": tags}})
    assert done.status_code == 200, done.json()
    assert record(esd, checkpoint_id)["status"] == "Active"


def test_a_truncated_safetensors_file_is_refused_and_disabled_with_the_reason(store_esd):
    esd = store_esd
    whole = model_file_bytes(padding=50_000)
    response, checkpoint_id = send(esd, "cut.safetensors", whole[: len(whole) // 2], parts=2)
    assert response.status_code == 400
    message = response.json()["message"]
    assert "cut.safetensors" in message and "truncated" in message
    item = record(esd, checkpoint_id)
    assert item["status"] == "Disabled" and item["params"]["error"] == message and item["hash"] is None
    store = esd.http.app.state.store
    assert store.stat(f"Stable-diffusion/checkpoint/custom/{checkpoint_id}/cut.safetensors") is None
    again = esd.put(f"/prod/checkpoints/{checkpoint_id}", json={"status": "Active", "multi_parts_tags": {"x": []}})
    assert again.status_code == 400 and record(esd, checkpoint_id)["status"] == "Disabled"


def test_a_header_pointing_past_the_end_of_the_file_is_refused(esd):
    header = json.dumps({"model.diffusion_model.w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1600]}}).encode()
    data = struct.pack("<Q", len(header)) + header + bytes(16)
    response, checkpoint_id = send(esd, "past.safetensors", data)
    assert response.status_code == 400
    assert "past.safetensors" in response.json()["message"]
    assert "ends at byte 1600" in response.json()["message"]
    assert record(esd, checkpoint_id)["status"] == "Disabled"


@pytest.mark.parametrize(
    "data", [b"not a model at all", struct.pack("<Q", 10**12) + b"{}", b""], ids=["junk", "huge-header", "empty"]
)
def test_files_that_are_not_safetensors_are_refused(esd, data):
    response, checkpoint_id = send(esd, "junk.safetensors", data)
    assert response.status_code == 400 and "junk.safetensors" in response.json()["message"]
    assert record(esd, checkpoint_id)["status"] == "Disabled"


def test_dtype_and_shape_must_match_the_byte_range(esd):
    data = safetensors_bytes({"model.diffusion_model.w": ("F32", [4, 4], bytes(32))})
    response, _ = send(esd, "short.safetensors", data)
    assert response.status_code == 400
    assert "needs 64 bytes but its data_offsets span 32" in response.json()["message"]


@pytest.mark.parametrize(
    ("declared", "kind", "family", "said"),
    [
        ("Stable-diffusion", "lora", "sd1", "LoRA (SD 1.x)"),
        ("Lora", "checkpoint", "sdxl", "full Stable Diffusion model (SDXL)"),
        ("VAE", "controlnet", "sd1", "ControlNet"),
        ("ControlNet", "vae", "unknown", "VAE"),
    ],
)
def test_a_file_of_another_type_is_refused_naming_both(esd, declared, kind, family, said):
    response, checkpoint_id = send(esd, "wrong.safetensors", model_file_bytes(kind, family), declared)
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith(f"wrong.safetensors was uploaded as {declared} but its keys are a {said}'s")
    assert record(esd, checkpoint_id)["status"] == "Disabled"


@pytest.mark.parametrize(
    ("kind", "family", "declared"),
    [
        ("checkpoint", "sd2", "Stable-diffusion"),
        ("checkpoint", "sdxl_refiner", "Stable-diffusion"),
        ("checkpoint", "flux", "Stable-diffusion"),
        ("checkpoint", "sd3", "Stable-diffusion"),
        ("lora", "sd1", "Lora"),
        ("lora", "sdxl", "Lora"),
        ("vae", "unknown", "VAE"),
    ],
)
def test_the_family_is_recorded_also_for_ones_the_worker_cannot_run(esd, kind, family, declared):
    response, checkpoint_id = send(esd, "m.safetensors", model_file_bytes(kind, family), declared)
    assert response.status_code == 200, response.json()
    assert record(esd, checkpoint_id)["params"]["model_family"] == family


@pytest.mark.parametrize(
    ("family", "writer"), [("sd1", "write_tiny_sd15_checkpoint"), ("sdxl", "write_tiny_sdxl_checkpoint")]
)
def test_real_tiny_checkpoints_get_their_family(store_esd, tmp_path, family, writer):
    from tests.support import tiny_models

    data = getattr(tiny_models, writer)(tmp_path / "m.safetensors").read_bytes()
    response, checkpoint_id = send(store_esd, f"{family}.safetensors", data, parts=3)
    assert response.status_code == 200, response.json()
    item = record(store_esd, checkpoint_id)
    assert item["status"] == "Active" and item["params"]["model_family"] == family


def _torch_file(obj, legacy: bool = False) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


class NotWeights:
    pass


def test_ckpt_files_go_through_the_weights_only_loader(store_esd):
    import torch

    state = {
        "state_dict": {
            "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2),
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(2),
        }
    }
    good, good_id = send(store_esd, "good.ckpt", _torch_file(state))
    assert good.status_code == 200, good.json()
    assert record(store_esd, good_id)["params"]["model_family"] == "sd1"
    legacy, _ = send(store_esd, "old.pt", _torch_file({"lora_unet_x.lora_down.weight": torch.zeros(1)}), "Lora")
    assert legacy.status_code == 200, legacy.json()
    pickled, pickled_id = send(store_esd, "code.ckpt", _torch_file({"x": NotWeights()}))
    assert pickled.status_code == 400
    assert "code.ckpt" in pickled.json()["message"] and "weights-only loader refused it" in pickled.json()["message"]
    assert record(store_esd, pickled_id)["status"] == "Disabled"
    whole = _torch_file(state)
    cut, _ = send(store_esd, "cut.ckpt", whole[: len(whole) - 40])
    assert cut.status_code == 400 and "cut.ckpt" in cut.json()["message"]


def test_without_torch_a_ckpt_is_checked_by_its_container_only(esd, monkeypatch):
    monkeypatch.setattr(torchfiles, "torch_available", lambda: False)
    monkeypatch.setattr("openesd.checkpoints.verify.torch_available", lambda: False)
    zipped, zipped_id = send(esd, "z.ckpt", b"PK\x03\x04" + bytes(100))
    assert zipped.status_code == 200, zipped.json()
    assert record(esd, zipped_id)["params"]["model_family"] == "unknown"
    junk, _ = send(esd, "j.pt", b"GIF89a not a model")
    assert junk.status_code == 400
    assert "j.pt" in junk.json()["message"] and "neither a torch zip archive nor a pickle" in junk.json()["message"]


def test_other_extensions_only_need_content(esd):
    ok, _ = send(esd, "u.onnx", b"\x08\x07onnx bytes", "rembg")
    assert ok.status_code == 200
    empty, _ = send(esd, "e.yaml", b"", "Stable-diffusion")
    assert empty.status_code == 400 and "e.yaml is empty" in empty.json()["message"]


def test_a_url_import_of_a_truncated_file_ends_disabled_with_the_error(make_client, file_server):
    esd = make_client(allow_private_url_imports=True)
    assert import_(esd, f"{file_server.url}/models/truncated.safetensors").status_code == 202
    failed = wait_for(esd, lambda c: c["status"] != "Initial")
    assert failed["status"] == "Disabled" and failed["hash"] is None
    assert "truncated.safetensors" in failed["params"]["error"] and "truncated" in failed["params"]["error"]
    store = esd.http.app.state.store
    assert store.list(f"Lora/checkpoint/custom/{failed['id']}/") == []


def test_a_url_import_of_a_model_as_the_wrong_type_is_disabled(make_client, file_server):
    esd = make_client(allow_private_url_imports=True)
    assert import_(esd, f"{file_server.url}/models/tiny.safetensors", "Stable-diffusion").status_code == 202
    failed = wait_for(esd, lambda c: c["status"] != "Initial")
    assert failed["status"] == "Disabled"
    assert "was uploaded as Stable-diffusion but its keys are a LoRA" in failed["params"]["error"]


def test_a_good_url_import_records_its_family(make_client, file_server):
    esd = make_client(allow_private_url_imports=True)
    assert import_(esd, f"{file_server.url}/models/tiny.safetensors").status_code == 202
    done = wait_for(esd, lambda c: c["status"] == "Active")
    assert done["params"]["model_family"] == "sd1"


def test_an_annotator_file_is_accepted_and_a_stable_diffusion_model_sent_as_one_is_refused(esd):
    pidinet = torch_file_bytes({"block1_1.conv1.weight": [60, 60, 3, 3], "classifier.weight": [1, 4, 1, 1]})
    ok, checkpoint_id = send(esd, "table5_pidinet.pth", pidinet, "ControlNet-annotator")
    assert ok.status_code == 200, ok.json()
    assert record(esd, checkpoint_id)["status"] == "Active"
    wrong, _ = send(esd, "model.safetensors", model_file_bytes(), "ControlNet-annotator")
    assert wrong.status_code == 400
    assert "was uploaded as ControlNet-annotator but its keys are a" in wrong.json()["message"]


def test_adetailer_takes_onnx_detectors_and_names_the_export_for_a_yolo_pt(esd):
    ok, _ = send(esd, "face_yolov8n.onnx", b"\x08\x07onnx bytes", "ADetailer")
    assert ok.status_code == 200, ok.json()
    pickled, _ = send(esd, "hand_yolov8n.pt", b"PK\x03\x04" + bytes(100), "ADetailer")
    assert pickled.status_code == 400
    message = pickled.json()["message"]
    assert "takes .onnx files only" in message and "yolo export model=hand_yolov8n.pt format=onnx" in message
