"""The X/Y/Z plot through the Generator with ESD's own payload shapes: every cell is the image the same
settings give run alone (same PNG bytes), and the grid holds the cells where the axes say."""

from __future__ import annotations

import numpy as np
import pytest

from openesd.errors import GenerationError
from tests.support.generation_jobs import info, png, run, txt2img_payload

# ESD's payloads (awslabs/stable-diffusion-aws-extension test/api_params/xyz_*.json) come from a WebUI 1.7:
# 15 script_args, Checkpoint name = 11, VAE = 27, Refiner checkpoint = 35, Steps = 4.
CHECKPOINT, VAE, REFINER, STEPS = 11, 27, 35, 4


def esd_args(x_type, x_dropdown, y_type=STEPS, y_values="1,2", lone=False, legend=True, margin=0):
    return [x_type, "", x_dropdown, y_type, y_values, [], 0, "", [], legend, lone, False, False, margin, False]


def esd_alwayson(seed):
    """The always-on scripts ESD's payloads carry: disabled, except the seed script, which holds the seed
    (and wins over the payload's own, as in the WebUI)."""
    return {
        "refiner": {"args": [False, "", 0.8]},
        "seed": {"args": [seed, False, -1, 0, 0, 0]},
        "tiled vae": {"args": [False, 3072, 192, True, True, True, False]},
        "extra options": {"args": []},
    }


def xyz_payload(args, **overrides):
    base = {"seed": -1, "steps": 1, "sampler_name": "DPM++ 2M Karras", "script_name": "x/y/z plot"}
    base.update(
        styles=[], restore_faces=None, s_tmax=float("inf"), alwayson_scripts=esd_alwayson(overrides.get("seed", -1))
    )
    return txt2img_payload(**{**base, "script_args": args, **overrides})


def pixels(data):
    return np.asarray(png(data).convert("RGB"))


def alone(generator, models, seed, **overrides):
    payload = txt2img_payload(**{"seed": seed, "steps": 1, "sampler_name": "DPM++ 2M Karras", **overrides})
    return run(generator, "txt2img", payload, models).images[0]


def test_checkpoint_axis_cells_equal_lone_jobs(generator, sd15_checkpoint, sd15_other_checkpoint):
    models = {"Stable-diffusion": [sd15_checkpoint, sd15_other_checkpoint]}
    names = [sd15_checkpoint.name, sd15_other_checkpoint.name]
    progress = []
    args = esd_args(CHECKPOINT, names, y_type=0, y_values="", lone=True)
    result = run(generator, "txt2img", xyz_payload(args), models, lambda s, t: progress.append((s, t)))
    data = info(result)
    assert len(result.images) == 3 and data["index_of_first_image"] == 1
    seed = data["all_seeds"][0]
    assert set(data["all_seeds"]) == {seed} and seed >= 0  # -1 fixed once for every cell
    for k, name in enumerate(names):
        lone = alone(generator, models, seed, override_settings={"sd_model_checkpoint": name})
        assert result.images[1 + k] == lone, f"cell {k} ({name}) differs from its lone job"
    assert result.images[1] != result.images[2]  # the two checkpoints really differ
    assert progress[-1] == (2, 2) and [s for s, _ in progress] == sorted(s for s, _ in progress)
    text = png(result.images[0]).text["parameters"]
    assert f'Script: X/Y/Z plot, X Type: Checkpoint name, X Values: "{names[0]},{names[1]}", Version: OpenESD' in text


def test_esd_vae_payload_returns_the_grid_only_and_its_cells_match(generator, sd15_checkpoint, vae_file):
    models = {"Stable-diffusion": [sd15_checkpoint], "VAE": [vae_file]}
    # ESD's own shape: include sub-images off, so the WebUI answers with the grid alone.
    args = esd_args(VAE, ["Automatic", vae_file.name], y_type=0, y_values="", legend=False)
    result = run(generator, "txt2img", xyz_payload(args, seed=11), models)
    assert len(result.images) == 1
    grid = pixels(result.images[0])
    assert grid.shape == (64, 128, 3)  # no legend: the cells side by side
    automatic = pixels(alone(generator, models, 11))
    own_vae = pixels(alone(generator, models, 11, override_settings={"sd_vae": vae_file.name}))
    assert np.array_equal(grid[:, :64], automatic) and np.array_equal(grid[:, 64:], own_vae)
    assert not np.array_equal(automatic, own_vae)


def test_prompt_search_replace_by_seed_grid_layout(generator, sd15_models):
    # WebUI 1.10 layout (18 args): X = Prompt S/R (index 7), Y = Seed with a -1 fixed once, legend, 4 px margin.
    args = [7, "fox,cat", [], 1, "3, -1", [], 0, "", [], True, True, False, False, False, False, False, 4, False]
    result = run(generator, "txt2img", xyz_payload(args), sd15_models)
    data = info(result)
    assert data["all_prompts"][1:] == ["a red fox", "a red cat", "a red fox", "a red cat"]
    seeds = data["all_seeds"][1:]
    assert seeds[:2] == [3, 3] and seeds[2] == seeds[3] >= 0
    assert f'Y Type: Seed, Y Values: "3, -1", Fixed Y Values: "3, {seeds[2]}"' in data["infotexts"][0]
    assert result.images[1] == alone(generator, sd15_models, 3)

    # The grid: a legend band left (3/4 of a cell) and on top, cells 4 px apart, x across and y down.
    grid = pixels(result.images[0])
    pad_left, pad_top = 48, grid.shape[0] - 2 * 64 - 4
    assert grid.shape[1] == pad_left + 2 * 64 + 4 and pad_top > 0
    for k in range(4):
        x, y = pad_left + 68 * (k % 2), pad_top + 68 * (k // 2)
        assert np.array_equal(grid[y : y + 64, x : x + 64], pixels(result.images[1 + k]))
    assert (grid[:pad_top, pad_left:] < 128).any() and (grid[pad_top:, :pad_left] < 128).any()  # texts drawn
    assert (grid[pad_top:, pad_left + 64 : pad_left + 68] == 255).all()  # the margin is background


def test_bad_values_fail_before_any_cell_runs(generator, sd15_models):
    progress = []
    bad_last = xyz_payload([4, "1, 2, 500", [], 0, "", [], 0, "", []])
    with pytest.raises(GenerationError, match="steps must be at most 150, got 500"):
        run(generator, "txt2img", bad_last, sd15_models, lambda s, t: progress.append(s))
    assert progress == []
    with pytest.raises(GenerationError, match="'Nope' is not among this job's Stable-diffusion files"):
        run(generator, "txt2img", xyz_payload(esd_args(CHECKPOINT, ["tiny-sd15", "Nope"])), sd15_models)
    with pytest.raises(GenerationError, match="Prompt S/R did not find 'wolf'"):
        run(generator, "txt2img", xyz_payload([7, "wolf, cat", [], 0, "", [], 0, "", []]), sd15_models)
    with pytest.raises(GenerationError, match="the Hires steps axis changes nothing here: enable_hr is off"):
        run(generator, "txt2img", xyz_payload([5, "1,2", [], 0, "", [], 0, "", []]), sd15_models)
    with pytest.raises(GenerationError, match="batch_size or n_iter above 1"):
        run(generator, "txt2img", xyz_payload([4, "1", [], 0, "", [], 0, "", []], batch_size=2), sd15_models)


def test_unknown_script_names_the_supported_ones(generator, sd15_models):
    payload = txt2img_payload(script_name="SD upscale", script_args=[])
    with pytest.raises(GenerationError) as err:
        run(generator, "txt2img", payload, sd15_models)
    assert err.value.message == (
        "script_name 'SD upscale' is not supported; supported: X/Y/Z plot, Prompt matrix, Prompts from file or textbox"
    )
