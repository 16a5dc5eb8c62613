"""Payload parsing and validation: what a client sending a WebUI body sees before any model loads."""

from __future__ import annotations

import sys

import pytest

from openesd.generation import GenerationError, parse_payload
from openesd.generation.payload.settings import read_settings
from openesd.generation.payload.scripts import apply_scripts


def test_infinity_parses_to_the_largest_float():
    data = parse_payload('{"s_tmax": Infinity, "s_tmin": -Infinity, "steps": 20}')
    assert data["s_tmax"] == sys.float_info.max
    assert data["s_tmin"] == -sys.float_info.max


def test_nan_is_refused():
    with pytest.raises(GenerationError, match="NaN"):
        parse_payload('{"cfg_scale": NaN}')


@pytest.mark.parametrize("text", ["[1, 2]", "{not json"])
def test_non_object_or_broken_json_is_refused(text):
    with pytest.raises(GenerationError):
        parse_payload(text)


def test_defaults_follow_the_webui():
    s = read_settings({"prompt": "cat"}, "txt2img")
    assert (s.steps, s.width, s.height, s.cfg_scale, s.sampler_name, s.batch_size, s.n_iter, s.seed) == (
        20,
        512,
        512,
        7.0,
        "Euler a",
        1,
        1,
        -1,
    )


def test_sampler_index_is_the_fallback_name():
    assert read_settings({"sampler_index": "DDIM"}, "txt2img").sampler_name == "DDIM"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("width", 100, "width must be a multiple of 8, got 100"),
        ("steps", 0, "steps must be at least 1, got 0"),
        ("batch_size", "two", "batch_size must be an integer, got 'two'"),
        ("denoising_strength", 1.5, "denoising_strength must be at most 1.0, got 1.5"),
    ],
)
def test_bad_values_name_the_key_and_value(key, value, message):
    with pytest.raises(GenerationError) as err:
        read_settings({key: value, "init_images": ["x"]}, "img2img")
    assert err.value.message == message
    assert err.value.status_code == 400


def test_unknown_selectable_scripts_are_refused_by_name():
    with pytest.raises(GenerationError, match="'loopback' is not supported; supported: X/Y/Z plot"):
        read_settings({"script_name": "loopback"}, "txt2img")


def test_img2img_needs_init_images():
    with pytest.raises(GenerationError, match="init_images"):
        read_settings({"prompt": "cat"}, "img2img")


REAL_SCRIPTS = {
    "extra options": {"args": []},
    "tiled diffusion": {"args": [False, "MultiDiffusion", False, True, 1024, 1024, 96, 96, 48, 1]},
    "tiled vae": {"args": [False, 2048, 128, True, True, True, False]},
    "controlnet": {"args": [{"enabled": False, "module": "none", "model": "None", "weight": 1}] * 3},
    "refiner": {"args": [False, "", 0.8]},
    "seed": {"args": [223104262, False, -1, 0, 0, 0]},
}


def test_a_real_webui_payloads_scripts_are_accepted():
    s = read_settings({"seed": 1, "alwayson_scripts": REAL_SCRIPTS}, "txt2img")
    options = apply_scripts(s)
    assert options.controlnet_units == [] and not options.tiled_vae
    assert s.seed == 223104262  # the seed script sets the seed, as in the WebUI


def test_seed_script_variation_applies_when_enabled():
    s = read_settings({"alwayson_scripts": {"seed": {"args": [7, True, 99, 0.3, 0, 0]}}}, "txt2img")
    apply_scripts(s)
    assert (s.seed, s.subseed, s.subseed_strength) == (7, 99, 0.3)


def test_unknown_script_fails_naming_it_and_listing_supported():
    s = read_settings({"alwayson_scripts": {"regional prompter": {"args": [True]}}}, "txt2img")
    with pytest.raises(GenerationError) as err:
        apply_scripts(s)
    assert "'regional prompter'" in err.value.message
    assert "controlnet" in err.value.message and "tiled vae" in err.value.message


def test_enabled_tiled_diffusion_takes_the_extensions_defaults_for_missing_args():
    scripts = dict(REAL_SCRIPTS, **{"tiled diffusion": {"args": [True, "MultiDiffusion"]}})
    tiled = apply_scripts(read_settings({"alwayson_scripts": scripts}, "txt2img")).tiled_diffusion
    assert tiled is not None
    assert (tiled.tile_width, tiled.tile_height, tiled.overlap, tiled.tile_batch_size) == (96, 96, 48, 4)


def test_enabled_tiled_vae_is_applied():
    scripts = {"tiled vae": {"args": [True, 2048, 128, True, True, True, False]}}
    assert apply_scripts(read_settings({"alwayson_scripts": scripts}, "txt2img")).tiled_vae
