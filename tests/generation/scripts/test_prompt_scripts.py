"""Prompt matrix and Prompts from file or textbox through the Generator: the images are the lone jobs'."""

from __future__ import annotations

import numpy as np
import pytest

from openesd.errors import GenerationError
from openesd.generation.scripts.prompt_matrix import combinations
from openesd.generation.scripts.prompts_from_file import parse_line
from tests.support.generation_jobs import info, png, run, txt2img_payload


def lone(generator, models, **overrides):
    return run(generator, "txt2img", txt2img_payload(**{"steps": 1, **overrides}), models).images[0]


def test_matrix_combinations_follow_the_bits_of_the_image_index():
    parts, prompts = combinations("a cat|red|big, ", put_at_start=False, delimiter=", ")
    assert parts == ["a cat", "red", "big, "]
    assert prompts == ["a cat", "a cat, red", "a cat, big", "a cat, red, big"]
    assert combinations("cat|red", put_at_start=True, delimiter=" ")[1] == ["cat", "red cat"]


def test_prompt_matrix_job(generator, sd15_models):
    payload = txt2img_payload(
        prompt="a fox|red|snow", steps=1, seed=9, script_name="Prompt matrix",
        script_args=[False, True, "positive", "comma", 2],
    )  # fmt: skip
    result = run(generator, "txt2img", payload, sd15_models)
    data = info(result)
    assert len(result.images) == 5 and data["index_of_first_image"] == 1
    assert data["all_prompts"][1:] == ["a fox", "a fox, red", "a fox, snow", "a fox, red, snow"]
    assert data["all_seeds"][1:] == [9, 10, 11, 12]  # "use different seed for each picture"
    assert result.images[4] == lone(generator, sd15_models, prompt="a fox, red, snow", seed=12)

    # 2 variable parts: 2 rows of 2, "red" across, "snow" down, a legend band on both sides, 2 px margins.
    grid = np.asarray(png(result.images[0]).convert("RGB"))
    pad_top = grid.shape[0] - 2 * 64 - 2
    assert grid.shape[1] == 48 + 2 * 64 + 2
    cell = np.asarray(png(result.images[3]).convert("RGB"))  # "a fox, snow": column 0, row 1
    assert np.array_equal(grid[pad_top + 66 : pad_top + 130, 48:112], cell)


def test_prompts_from_file_job(generator, sd15_models):
    text = 'a cat\n--prompt "a dog" --negative_prompt "dark" --steps 2 --cfg_scale 5\n\n'
    payload = txt2img_payload(
        prompt="photo", steps=1, seed=-1, script_name="prompts from file or textbox",
        script_args=[True, False, "end", text],
    )  # fmt: skip
    result = run(generator, "txt2img", payload, sd15_models)
    data = info(result)
    assert data["all_prompts"] == ["photo a cat", "photo a dog"]
    assert data["all_negative_prompts"] == ["blurry", "blurry dark"]
    first, second = data["all_seeds"]
    assert second == first + 1  # "iterate seed every line" from one fixed random seed
    expected = lone(
        generator, sd15_models, prompt="photo a dog", negative_prompt="blurry dark", steps=2, cfg_scale=5.0,
        seed=second,
    )  # fmt: skip
    assert result.images[1] == expected
    assert "Steps: 2" in data["infotexts"][1] and "CFG scale: 5.0" in data["infotexts"][1]


def test_prompt_file_lines_parse_as_the_webui_and_refuse_unknown_options():
    assert parse_line("just a prompt") == {"prompt": "just a prompt"}
    assert parse_line("--prompt a red fox --seed 3 --tiling true") == {"prompt": "a red fox", "seed": 3, "tiling": True}
    with pytest.raises(GenerationError, match="unknown option --denoise in line"):
        parse_line("--prompt cat --denoise 0.5")
    with pytest.raises(GenerationError, match="--steps 'many'"):
        parse_line("--steps many")


def test_script_argument_errors_name_the_value(generator, sd15_models):
    matrix = txt2img_payload(prompt="a|b", script_name="prompt matrix", script_args=[False, False, "both"])
    with pytest.raises(GenerationError, match="prompt_type 'both' is not one of positive, negative"):
        run(generator, "txt2img", matrix, sd15_models)
    lines = txt2img_payload(
        script_name="prompts from file or textbox", script_args=[False, False, "start", "--sd_model nope"]
    )
    with pytest.raises(GenerationError, match="'nope' is not among this job's Stable-diffusion files"):
        run(generator, "txt2img", lines, sd15_models)
