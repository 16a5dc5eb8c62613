"""LoRAs end to end through `Generator.run`: `<lora:name:weight>` tags in a txt2img payload."""

from __future__ import annotations

import numpy as np
import pytest

from openesd.generation import GenerationError
from tests.support import tiny_adapters as ta
from tests.support.generation_jobs import png, run, txt2img_payload


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


def test_lora_tag_in_a_txt2img_payload_changes_the_image_and_is_off_afterwards(generator, sd15_models, tmp_path):
    models = {**sd15_models, "Lora": [ta.write_kohya_lora(tmp_path / "style.safetensors")]}
    plain = run(generator, "txt2img", txt2img_payload(), models).images[0]
    tagged = run(generator, "txt2img", txt2img_payload(prompt="a red fox <lora:style:1>"), models).images[0]
    after = run(generator, "txt2img", txt2img_payload(), models).images[0]
    assert np.abs(pixels(tagged) - pixels(plain)).max() > 2
    assert after == plain


def test_unknown_lora_tag_fails_naming_it(generator, sd15_models):
    with pytest.raises(GenerationError, match="'nosuch'"):
        run(generator, "txt2img", txt2img_payload(prompt="a red fox <lora:nosuch:1>"), sd15_models)
