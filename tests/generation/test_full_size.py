"""Full-size SD 1.5 architecture (random weights) through the real loader: detection must give the
real SD 1.5 config. Slow on a CPU (about a minute, ~10 GB of RAM): run with OPENESD_SLOW=1."""

from __future__ import annotations

import os

import pytest

from tests.support.generation_jobs import png, run, txt2img_payload

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("OPENESD_SLOW"), reason="full-size model: set OPENESD_SLOW=1"),
]


@pytest.fixture(scope="module")
def full_sd15(tmp_path_factory):
    from openesd.modeltools.export import pipeline_to_ldm
    from safetensors.torch import save_file
    from tests.support import tiny_models as tm

    state = {k: v.half() for k, v in pipeline_to_ldm(tm.full_sd15_components()).items()}
    path = tmp_path_factory.mktemp("full") / "v1-5-random.safetensors"
    save_file(state, str(path))
    return path


def test_full_size_sd15_detects_the_real_config_and_generates(full_sd15):
    from openesd.generation import Generator
    from openesd.generation.models import loading

    arch = loading.detect_architecture(loading.read_state_dict(full_sd15), full_sd15)
    unet = arch.configs["unet"]
    assert arch.family == "sd1"
    assert unet["block_out_channels"] == [320, 640, 1280, 1280] and unet["layers_per_block"] == 2
    assert unet["attention_head_dim"] == 8 and unet["cross_attention_dim"] == 768
    assert unet["down_block_types"] == ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    assert arch.configs["vae"]["block_out_channels"] == [128, 256, 512, 512]
    text = arch.configs["text_encoder"]
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (768, 12, 12)

    generator = Generator(device="cpu")
    result = run(
        generator, "txt2img", txt2img_payload(steps=1, sampler_name="Euler a"), {"Stable-diffusion": [full_sd15]}
    )
    assert png(result.images[0]).size == (64, 64)
