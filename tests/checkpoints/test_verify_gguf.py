"""GGUF uploads (quantised FLUX.1 / SD 3.5 transformers): checked from the header, never unpickled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checkpoints.test_verify import record, send

gguf = pytest.importorskip("gguf")


def gguf_bytes(tmp_path: Path, names: list[str], quant: str = "Q8_0") -> bytes:
    """A small GGUF file with these tensor names (32x32 weights in `quant`, the rest F32), as city96's files."""
    import numpy as np

    qtype = gguf.GGMLQuantizationType[quant]
    writer = gguf.GGUFWriter(str(tmp_path / "model.gguf"), arch="flux")
    for name in names:
        data = np.linspace(-1, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
        if name.endswith(".weight"):
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(name, data[0].copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return (tmp_path / "model.gguf").read_bytes()


FLUX_NAMES = [
    "img_in.weight",
    "time_in.in_layer.weight",
    "double_blocks.0.img_attn.qkv.weight",
    "single_blocks.0.linear1.bias",
]


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_0"])
def test_a_flux_gguf_is_accepted_as_a_stable_diffusion_checkpoint_with_its_family(esd, tmp_path, quant):
    response, checkpoint_id = send(esd, f"flux1-dev-{quant}.gguf", gguf_bytes(tmp_path, FLUX_NAMES, quant))
    assert response.status_code == 200, response.json()
    item = record(esd, checkpoint_id)
    assert item["status"] == "Active" and item["params"]["model_family"] == "flux"


def test_an_sd35_gguf_gets_its_family(esd, tmp_path):
    names = ["x_embedder.proj.bias", "joint_blocks.0.x_block.attn.qkv.weight"]
    response, checkpoint_id = send(esd, "sd3.5_large-Q8_0.gguf", gguf_bytes(tmp_path, names))
    assert response.status_code == 200, response.json()
    assert record(esd, checkpoint_id)["params"]["model_family"] == "sd3"


def test_a_truncated_gguf_is_refused_naming_the_tensor(esd, tmp_path):
    whole = gguf_bytes(tmp_path, FLUX_NAMES)
    response, checkpoint_id = send(esd, "cut.gguf", whole[:-200])
    assert response.status_code == 400
    message = response.json()["message"]
    assert "cut.gguf is not a valid .gguf file" in message and "truncated upload?" in message
    assert record(esd, checkpoint_id)["status"] == "Disabled"


@pytest.mark.parametrize(
    "data, said",
    [
        (b"\x80\x04\x95" + bytes(64), "does not start with the GGUF magic bytes"),  # a pickle renamed .gguf
        (b"GGUF" + (7).to_bytes(4, "little") + bytes(40), "GGUF version 7 is not supported; valid: 2, 3"),
        (b"GGUF" + (3).to_bytes(4, "little") + (1 << 40).to_bytes(8, "little") + bytes(40), "corrupt GGUF header"),
    ],
    ids=["pickle", "version", "tensor-count"],
)
def test_files_that_are_not_gguf_are_refused(esd, data, said):
    response, _ = send(esd, "model.gguf", data)
    assert response.status_code == 400
    assert said in response.json()["message"]


def test_a_gguf_transformer_sent_as_a_lora_is_refused_naming_the_type(esd, tmp_path):
    response, _ = send(esd, "flux.gguf", gguf_bytes(tmp_path, FLUX_NAMES), checkpoint_type="Lora")
    assert response.status_code == 400
    message = response.json()["message"]
    assert "flux.gguf was uploaded as Lora" in message and "upload it as Stable-diffusion" in message
