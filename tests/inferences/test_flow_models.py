"""FLUX.1 and SD 3.5 through the ESD API end to end (issue 20): the files as users upload them (a BFL
transformer with separate CLIP-L, T5-XXL and VAE files; Stability's single file), ESD jobs that differ from
an SD 1.5 job only in the model names, a real worker process."""

from __future__ import annotations

import pytest

from tests.checkpoints.conftest import upload_file
from tests.inferences.conftest import open_app
from tests.support import flow_files, flow_loras, gguf_files
from tests.support.esd_jobs import create_endpoint, images, run_two_step, wait_job
from tests.support.generation_jobs import txt2img_payload
from tests.support.tiny_adapters import _save_safetensors

FLUX = "flux1-dev-tiny.safetensors"
FLUX_GGUF = "flux1-dev-tiny-Q8_0.gguf"
SD35 = "sd3.5-medium-tiny.safetensors"
FLUX_PARTS = {"text_encoder": ["clip_l.safetensors", "t5xxl_fp16.safetensors"], "VAE": ["ae.safetensors"]}


@pytest.fixture(scope="module")
def flow_server(tmp_path_factory):
    """One app with one Async endpoint and the flow files uploaded (a worker process: started once)."""
    folder = tmp_path_factory.mktemp("flow-models")
    components = flow_files.write_tiny_flux_checkpoint(folder / FLUX, layout="bfl")
    flow_files.write_tiny_clip_l(folder / "clip_l.safetensors")
    flow_files.write_tiny_t5(folder / "t5xxl_fp16.safetensors")
    flow_files.write_tiny_flow_vae(folder / "ae.safetensors", "flux")
    flow_files.write_tiny_sd35_checkpoint(folder / SD35, with_text_encoders=True)
    gguf_files.write_gguf(flow_files.flux_to_bfl(components["transformer"]), folder / FLUX_GGUF, "Q8_0")
    deltas = flow_loras.flow_lora_deltas(components, "flux", scale=0.5, parts="transformer")
    _save_safetensors(folder / "flux-style.safetensors", flow_loras.kohya_state_dict(deltas))
    client = open_app(tmp_path_factory.mktemp("flow-server"), endpoint_idle_s=1.0)
    from tests.api.conftest import ESDClient

    esd = ESDClient(client)
    for name, kind in (
        (FLUX, "Stable-diffusion"),
        (SD35, "Stable-diffusion"),
        (FLUX_GGUF, "Stable-diffusion"),
        ("clip_l.safetensors", "text_encoder"),
        ("t5xxl_fp16.safetensors", "text_encoder"),
        ("ae.safetensors", "VAE"),
        ("flux-style.safetensors", "Lora"),
    ):
        upload_file(esd, name, (folder / name).read_bytes(), 1, kind)
    assert create_endpoint(esd, endpoint_name="flow")["endpoint_status"] == "InService"
    yield esd
    client.__exit__(None, None, None)


def generate(esd, task: str, payload: dict, models: dict) -> dict:
    job_id, started = run_two_step(esd, task, "esd-async-flow", payload, models)
    assert started.status_code == 202, started.json()
    return wait_job(esd, job_id, timeout=300)


def flux_payload(**overrides) -> dict:
    """What a Forge user sends for FLUX.1 dev: Euler, Simple, CFG 1, a distilled CFG."""
    fields = {
        "prompt": "a photo of a red house",
        "negative_prompt": "",
        "steps": 3,
        "sampler_name": "Euler",
        "scheduler": "Simple",
        "cfg_scale": 1,
        "distilled_cfg_scale": 3.5,
    }
    return txt2img_payload(**(fields | overrides))


def pixels(image) -> bytes:
    return image.convert("RGB").tobytes()


def test_flux_txt2img_from_a_transformer_file_and_its_separate_parts(flow_server):
    models = {"Stable-diffusion": [FLUX], **FLUX_PARTS}
    job = generate(flow_server, "txt2img", flux_payload(seed=7), models)
    assert job["status"] == "succeed", job
    [image] = images(flow_server, job)
    assert image.size == (64, 64)
    assert "Distilled CFG Scale: 3.5" in image.info["parameters"]
    again = generate(flow_server, "txt2img", flux_payload(seed=7), models)
    [same] = images(flow_server, again)
    assert pixels(same) == pixels(image)  # same payload and seed, same picture
    other = generate(flow_server, "txt2img", flux_payload(seed=8), models)
    assert pixels(images(flow_server, other)[0]) != pixels(image)
    styled = generate(
        flow_server,
        "txt2img",
        flux_payload(seed=7, prompt="a photo of a red house <lora:flux-style:1>"),
        {**models, "Lora": ["flux-style.safetensors"]},
    )
    assert styled["status"] == "succeed", styled
    assert pixels(images(flow_server, styled)[0]) != pixels(image)  # the kohya LoRA changes the picture


def test_a_gguf_q8_transformer_makes_nearly_the_picture_of_the_full_file(flow_server):
    from tests.support.webui_reference import psnr

    full = generate(flow_server, "txt2img", flux_payload(seed=11), {"Stable-diffusion": [FLUX], **FLUX_PARTS})
    quantised = generate(flow_server, "txt2img", flux_payload(seed=11), {"Stable-diffusion": [FLUX_GGUF], **FLUX_PARTS})
    assert quantised["status"] == "succeed", quantised
    [a], [b] = images(flow_server, full), images(flow_server, quantised)
    assert psnr(a.convert("RGB"), b.convert("RGB")) > 40  # measured 65 dB at the loader (tests/generation/quant)


def test_a_flux_job_without_its_t5_fails_naming_the_file_type(flow_server):
    models = {"Stable-diffusion": [FLUX], "text_encoder": ["clip_l.safetensors"], "VAE": ["ae.safetensors"]}
    job = generate(flow_server, "txt2img", flux_payload(), models)
    assert job["status"] == "failed"
    message = job["sagemakerRaw"]
    assert "T5-XXL" in message and "text_encoder" in message, message


def test_sd35_txt2img_and_img2img_from_stabilitys_single_file(flow_server):
    payload = txt2img_payload(prompt="a photo of a cat", steps=3, sampler_name="Euler", cfg_scale=4, seed=3)
    job = generate(flow_server, "txt2img", payload, {"Stable-diffusion": [SD35]})
    assert job["status"] == "succeed", job
    [image] = images(flow_server, job)
    assert image.size == (64, 64) and "Steps: 3" in image.info["parameters"]
    from tests.support.generation_jobs import b64png

    img2img = dict(payload, init_images=[b64png(image)], denoising_strength=0.5, seed=4)
    changed = generate(flow_server, "img2img", img2img, {"Stable-diffusion": [SD35]})
    assert changed["status"] == "succeed", changed
    [result] = images(flow_server, changed)
    assert result.size == (64, 64) and pixels(result) != pixels(image)
