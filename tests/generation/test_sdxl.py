"""SDXL base and refiner single files through the Generator."""

from __future__ import annotations

import pytest

from openesd.generation import GenerationError
from tests.support.generation_jobs import png, run, txt2img_payload


def test_sdxl_checkpoint_loads_and_generates(generator, sdxl_checkpoint):
    models = {"Stable-diffusion": [sdxl_checkpoint]}
    result = run(generator, "txt2img", txt2img_payload(batch_size=2, width=64, height=80), models)
    assert [png(i).size for i in result.images] == [(64, 80), (64, 80)]
    again = run(generator, "txt2img", txt2img_payload(batch_size=2, width=64, height=80), models)
    assert again.images == result.images


def test_sdxl_img2img_and_inpaint(generator, sdxl_checkpoint):
    from tests.generation.test_img2img import img2img_payload, square_mask
    from tests.support.generation_jobs import b64png

    models = {"Stable-diffusion": [sdxl_checkpoint]}
    assert png(run(generator, "img2img", img2img_payload(), models).images[0]).size == (64, 64)
    payload = img2img_payload(mask=b64png(square_mask()))
    assert png(run(generator, "img2img", payload, models).images[0]).size == (64, 64)


def test_refiner_script_hands_off_at_the_switch_point(generator, sdxl_checkpoint, sdxl_refiner_checkpoint):
    models = {"Stable-diffusion": [sdxl_checkpoint, sdxl_refiner_checkpoint]}
    plain = run(generator, "txt2img", txt2img_payload(steps=4), models)
    refiner = {"refiner": {"args": [True, sdxl_refiner_checkpoint.name, 0.5]}}
    steps = []
    refined = run(
        generator, "txt2img", txt2img_payload(steps=4, alwayson_scripts=refiner), models, lambda s, t: steps.append(s)
    )
    assert refined.images[0] != plain.images[0]
    text = png(refined.images[0]).text["parameters"]
    assert f"Refiner: {sdxl_refiner_checkpoint.stem} [" in text and "Refiner switch at: 0.5" in text
    assert steps[-1] == 4
    # The payload's own keys do the same as the script.
    keyed = run(
        generator,
        "txt2img",
        txt2img_payload(steps=4, refiner_checkpoint=sdxl_refiner_checkpoint.stem, refiner_switch_at=0.5),
        models,
    )
    assert keyed.images[0] == refined.images[0]


def test_refiner_on_an_sd15_base_is_refused(generator, sd15_checkpoint, sdxl_refiner_checkpoint):
    models = {"Stable-diffusion": [sd15_checkpoint, sdxl_refiner_checkpoint]}
    payload = txt2img_payload(refiner_checkpoint=sdxl_refiner_checkpoint.name, refiner_switch_at=0.5)
    with pytest.raises(GenerationError, match="the refiner needs an SDXL base checkpoint"):
        run(generator, "txt2img", payload, models)
