"""Live previews: the WebUI's "Approx cheap" map, a TAESD decoder file, and the previews a job hands on while it
samples (through the worker's `_serve`, as the local engine and the Ray replica run it)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from openesd.errors import ModelError, UnsupportedFeature
from openesd.execution._endpoint_process import _serve
from openesd.execution.base import JobSpec
from openesd.execution.events import JobProgress, JobSucceeded
from openesd.generation import GenerationRequest, previews
from tests.support.generation_jobs import txt2img_payload
from tests.support.memory_pipe import MemoryPipe


def _jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return np.asarray(image.convert("RGB"))


def taesd_file(folder: Path, seed: int, name: str = "taesd_decoder.pth") -> Path:
    """A random TAESD decoder saved as the WebUI's file: the `Sequential` indices, Clamp at 0 (no weights)."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    state = AutoencoderTiny().decoder.state_dict()
    webui = {}
    for key, value in state.items():
        index, rest = key.removeprefix("layers.").split(".", 1)
        webui[f"{int(index) + 1}.{rest}"] = value.clone()
    path = folder / name
    torch.save(webui, path)
    return path


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_approx_cheap_is_the_webui_linear_map(family):
    import torch

    latent = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(3)) * 1.5
    coefs = previews.APPROX_CHEAP_SDXL if family == "sdxl" else previews.APPROX_CHEAP_SD
    expected = np.einsum("lxy,lr->xyr", latent.double().numpy(), np.array(coefs, dtype=np.float64))
    expected = np.clip(expected * 0.5 + 0.5, 0.0, 1.0) * 255.0
    got = previews.approx_cheap(latent, family)
    assert got.shape == (6, 5, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(np.float64) - expected).max() <= 1.0
    other = previews.approx_cheap(latent, "sd1" if family == "sdxl" else "sdxl")
    assert np.abs(other.astype(int) - got.astype(int)).max() > 10  # the families' maps differ


def test_taesd_decoder_file_changes_the_preview(tmp_path):
    import torch

    latent = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(0))
    one = previews.taesd_image(previews.load_taesd(taesd_file(tmp_path, 1, "a.pth"), "cpu"), latent)
    two = previews.taesd_image(previews.load_taesd(taesd_file(tmp_path, 2, "b.pth"), "cpu"), latent)
    assert one.shape == (64, 64, 3)  # TAESD decodes to the full size
    assert np.abs(one.astype(int) - two.astype(int)).mean() > 1.0  # the weights make the picture
    bad = tmp_path / "bad.pth"
    torch.save({"1.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(ModelError, match="bad.pth is not a TAESD decoder"):
        previews.load_taesd(bad, "cpu")


def test_preview_type_and_taesd_file_are_checked_by_name(tmp_path):
    assert previews.preview_type({}) == "Approx cheap"
    with pytest.raises(UnsupportedFeature, match="show_progress_type 'Full' is not supported"):
        previews.preview_type({"show_progress_type": "Full"})
    with pytest.raises(ModelError, match="needs the VAE file taesdxl_decoder.pth .* VAE files: taesd_decoder.pth"):
        previews.find_taesd([tmp_path / "taesd_decoder.pth"], "sdxl")


def _serve_job(generator, checkpoint: Path, tmp_path: Path, preview_every: int, **payload) -> list:
    models_dir = tmp_path / "models"
    (models_dir / "tiny").mkdir(parents=True, exist_ok=True)
    local = models_dir / "tiny" / checkpoint.name
    if not local.exists():
        local.symlink_to(checkpoint)  # present: the worker downloads nothing
    models = {"Stable-diffusion": [{"id": "tiny", "model_name": checkpoint.name, "key": "unused"}]}
    extra = payload.pop("vae", None)
    if extra is not None:
        (models_dir / "taesd").mkdir(exist_ok=True)
        (models_dir / "taesd" / extra.name).write_bytes(extra.read_bytes())
        models["VAE"] = [{"id": "taesd", "model_name": extra.name, "key": "unused"}]
    spec = JobSpec(
        id="j",
        endpoint_id="e",
        task="txt2img",
        param_key="k",
        payload_string=json.dumps(txt2img_payload(steps=3, **payload)),
        models=models,
        preview_every=preview_every,
    )
    pipe = MemoryPipe()
    assert _serve(pipe, spec, generator, store=None, models_dir=models_dir) is True
    sent = pipe.sent
    assert isinstance(sent[-1], JobSucceeded), sent[-1]
    return sent


def test_a_job_sends_a_preview_every_n_model_calls(generator, sd15_checkpoint, tmp_path):
    sent = _serve_job(generator, sd15_checkpoint, tmp_path, preview_every=2, sampler_name="Euler")
    shown = [(m.step, m.total) for m in sent if isinstance(m, JobProgress) and m.preview is not None]
    assert shown == [(2, 3)]  # 3 Euler calls: one preview, at the second
    image = _jpeg(next(m.preview for m in sent if isinstance(m, JobProgress) and m.preview))
    assert image.shape == (32, 32, 3)  # Approx cheap: the latent's size (the tiny VAE scales by 2, not 8)
    plain = _serve_job(generator, sd15_checkpoint, tmp_path, preview_every=0)
    assert all(m.preview is None for m in plain if isinstance(m, JobProgress))


def test_a_taesd_job_previews_through_the_users_decoder(generator, sd15_checkpoint, tmp_path):
    decoder = taesd_file(tmp_path, 5)
    override = {"show_progress_type": "TAESD"}
    sent = _serve_job(generator, sd15_checkpoint, tmp_path, 1, vae=decoder, override_settings=override)
    images = [_jpeg(m.preview) for m in sent if isinstance(m, JobProgress) and m.preview is not None]
    assert [i.shape for i in images] == [(256, 256, 3)] * 3  # one per model call, 8x the (tiny model's) latent
    failed = _serve_job_failure(generator, sd15_checkpoint, tmp_path, override)
    assert "needs the VAE file taesd_decoder.pth" in failed


def _serve_job_failure(generator, checkpoint: Path, tmp_path: Path, override: dict) -> str:
    from openesd.errors import OpenESDError

    request = GenerationRequest(
        "txt2img", txt2img_payload(override_settings=override), {"Stable-diffusion": [checkpoint]}
    )
    with pytest.raises(OpenESDError) as error:
        generator.run(request, None, previews.PreviewRequest(1, lambda *_: None))
    return error.value.message
