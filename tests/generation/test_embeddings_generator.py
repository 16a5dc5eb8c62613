"""Embeddings end to end through `Generator.run`: a name in the prompt uses the job's embedding file."""

from __future__ import annotations

import numpy as np

from tests.support import tiny_adapters as ta
from tests.support.generation_jobs import png, run, txt2img_payload


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


def test_embedding_by_name_changes_the_image(generator, sd15_models, tmp_path):
    models = {**sd15_models, "embeddings": [ta.write_embedding_pt(tmp_path / "foxstyle.pt")]}
    plain = run(generator, "txt2img", txt2img_payload(prompt="a red fox"), models).images[0]
    named = run(generator, "txt2img", txt2img_payload(prompt="a red fox, foxstyle"), models).images[0]
    word = run(generator, "txt2img", txt2img_payload(prompt="a red fox, foxstyle"), sd15_models).images[0]
    assert np.abs(pixels(named) - pixels(plain)).max() > 2
    assert named != word
