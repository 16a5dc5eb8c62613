"""The Generator's task dispatch: every WebUI task reaches its implementation through one entry point."""

from __future__ import annotations

from PIL import Image

from openesd.generation import GenerationRequest, GenerationResult
from tests.support.generation_jobs import b64png, png


def test_extras_task_runs_through_the_generator(generator):
    payload = {
        "image": b64png(Image.new("RGB", (16, 12), (10, 200, 30))),
        "resize_mode": 0,
        "upscaling_resize": 2,
        "upscaler_1": "Lanczos",
        "upscaler_2": "None",
    }
    result = generator.run(GenerationRequest("extra-single-image", payload, {}))
    assert isinstance(result, GenerationResult)
    assert png(result.images[0]).size == (32, 24)
    assert result.html_info


def test_payload_must_be_an_object(generator):
    import pytest

    from openesd.generation import GenerationError

    with pytest.raises(GenerationError, match="payload must be a JSON object, got list"):
        generator.run(GenerationRequest("txt2img", [], {}))
