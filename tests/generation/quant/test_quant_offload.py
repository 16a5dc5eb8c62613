"""Text encoders kept in CPU memory (`text_encoder_offload`): the same image, the GPU spared T5-XXL."""

from __future__ import annotations

import pytest

from openesd.errors import ModelError
from openesd.generation.quant import offload_text_encoders
from openesd.generation.quant.offload import TEXT_ENCODERS
from tests.generation.quant.conftest import PROMPT
from tests.support import tiny_flow

torch = pytest.importorskip("torch")


def _pipeline(family: str):
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    if family == "flux":
        pipe = FluxPipeline(**tiny_flow.tiny_flux_components())
    else:
        pipe = StableDiffusion3Pipeline(**tiny_flow.tiny_sd3_components())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _image(pipe, device: str = "cpu"):
    generator = torch.Generator(device).manual_seed(0)
    extra = {"max_sequence_length": 32}
    return pipe(
        PROMPT, height=64, width=64, num_inference_steps=2, generator=generator, output_type="np", **extra
    ).images[0]


def _hooks(pipe) -> int:
    encoders = [getattr(pipe, name, None) for name in TEXT_ENCODERS]
    return sum(len(e._forward_pre_hooks) + len(e._forward_hooks) for e in encoders if e is not None)


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_every_offload_mode_draws_the_same_image(family):
    import numpy as np

    pipe = _pipeline(family)
    reference = _image(pipe)
    for mode in ("cpu", "swap"):
        offload_text_encoders(pipe, mode, "cpu")
        assert _hooks(pipe) == 2 * (2 if family == "flux" else 3)  # one pair of hooks per encoder
        assert np.array_equal(_image(pipe), reference), mode
    offload_text_encoders(pipe, "none", "cpu")
    assert _hooks(pipe) == 0 and np.array_equal(_image(pipe), reference)


def test_the_setting_selects_the_mode_and_an_unknown_one_is_refused():
    from openesd.generation.models.fastpath import FastPath
    from openesd.settings import Settings

    assert FastPath.from_settings(Settings(text_encoder_offload="swap")).text_encoder_offload == "swap"
    assert FastPath.from_settings(Settings()).text_encoder_offload == "none"
    with pytest.raises(ModelError, match="unknown text_encoder_offload 'gpu'; valid: none, cpu, swap"):
        offload_text_encoders(object(), "gpu", "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["cpu", "swap"])
def test_on_a_gpu_the_encoders_stay_in_cpu_memory_and_the_image_is_the_same(mode):
    import numpy as np

    pipe = _pipeline("flux").to("cuda")
    reference = _image(pipe, "cuda")
    offload_text_encoders(pipe, mode, "cuda")
    assert pipe._execution_device.type == "cuda"
    image = _image(pipe, "cuda")
    assert pipe.text_encoder_2.device.type == "cpu" and pipe.transformer.device.type == "cuda"
    assert np.abs(image - reference).max() < 2e-2  # CPU and GPU kernels round differently
