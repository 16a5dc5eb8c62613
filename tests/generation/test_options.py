"""`override_settings` and the payload's sampler fields: what reaches the sampler, what is refused, what is
listed as ignored or unknown on the job."""

from __future__ import annotations

import math

import pytest

from openesd.errors import PayloadError
from openesd.generation.payload import options
from openesd.generation.payload.settings import SamplerOptions, parse_payload, read_settings


def _read(override: dict | None = None, **payload):
    return read_settings({"prompt": "cat", "override_settings": override or {}, **payload}, "txt2img")


def test_the_three_tables_are_disjoint_and_every_honoured_sampler_setting_is_a_sampler_options_field():
    assert not set(options.HONOURED) & set(options.REFUSED)
    assert not set(options.HONOURED) & options.IGNORED
    assert not set(options.REFUSED) & options.IGNORED
    fields = set(SamplerOptions.__dataclass_fields__)
    assert set(options.HONOURED) - fields == {"sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "tiling"}


def test_no_override_gives_the_webui_defaults():
    s = _read()
    assert s.sampling.randn_source == "GPU"  # the WebUI's default source, not CPU
    assert (s.sampling.eta_ancestral, s.sampling.eta_ddim, s.sampling.eta) == (1.0, 0.0, None)
    assert (s.sampling.s_churn, s.sampling.s_tmin, s.sampling.s_tmax, s.sampling.s_noise) == (0.0, 0.0, math.inf, 1.0)
    assert s.sampling.emphasis == "Original" and s.clip_skip == 1 and s.tiling is False
    assert s.ignored_settings == [] and s.unknown_settings == []


def test_honoured_settings_reach_the_sampler_options():
    s = _read(
        {
            "eta_noise_seed_delta": 31337,
            "randn_source": "NV",
            "sigma_min": 0.1,
            "sigma_max": 10,
            "rho": 5,
            "eta_ancestral": 0.5,
            "eta_ddim": 0.3,
            "always_discard_next_to_last_sigma": True,
            "sgm_noise_multiplier": True,
            "uni_pc_variant": "bh2",
            "uni_pc_skip_type": "logSNR",
            "uni_pc_order": 2,
            "uni_pc_lower_order_final": False,
            "use_old_scheduling": True,
            "emphasis": "No norm",
            "s_min_uncond": 1.5,
            "pad_cond_uncond": True,
        }
    )
    o = s.sampling
    assert (o.eta_noise_seed_delta, o.randn_source, o.sigma_min, o.sigma_max, o.rho) == (31337, "NV", 0.1, 10.0, 5.0)
    assert (o.eta_ancestral, o.eta_ddim, o.always_discard_next_to_last_sigma, o.sgm_noise_multiplier) == (
        0.5,
        0.3,
        True,
        True,
    )
    assert (o.uni_pc_variant, o.uni_pc_skip_type, o.uni_pc_order, o.uni_pc_lower_order_final) == (
        "bh2",
        "logSNR",
        2,
        False,
    )
    assert (o.use_old_scheduling, o.emphasis, o.s_min_uncond, o.pad_cond_uncond) == (True, "No norm", 1.5, True)
    assert s.ignored_settings == [] and s.unknown_settings == []


def test_clip_skip_vae_checkpoint_and_tiling_are_read_from_the_settings():
    s = _read({"CLIP_stop_at_last_layers": 2, "sd_vae": "None", "sd_model_checkpoint": "a.safetensors", "tiling": True})
    assert (s.clip_skip, s.tiling) == (2, True)
    assert _read({"tiling": True}, tiling=False).tiling is False  # the payload's own field wins, as in the WebUI


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"randn_source": "AMD"}, "override_settings.randn_source must be one of GPU, CPU, NV; got 'AMD'"),
        ({"emphasis": "Strong"}, "override_settings.emphasis must be one of None, Ignore, Original, No norm"),
        ({"CLIP_stop_at_last_layers": 13}, "override_settings.CLIP_stop_at_last_layers must be at most 12, got 13"),
        ({"eta_noise_seed_delta": 1.5}, "override_settings.eta_noise_seed_delta must be an integer, got 1.5"),
        ({"s_churn": "lots"}, "override_settings.s_churn must be a number, got 'lots'"),
        ({"s_noise": -1}, "override_settings.s_noise must be at least 0.0, got -1"),
        ({"sd_vae": 3}, "override_settings.sd_vae must be a string, got 3"),
        ({"sgm_noise_multiplier": "yes"}, "override_settings.sgm_noise_multiplier must be true or false, got 'yes'"),
    ],
)
def test_bad_values_name_the_setting_and_the_value(override, message):
    with pytest.raises(PayloadError) as err:
        _read(override)
    assert message in str(err.value)
    assert err.value.status_code < 500


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("token_merging_ratio", 0.5, "token merging"),
        ("sd_vae_decode_method", "TAESD", "TAESD"),
        ("initial_noise_multiplier", 1.2, "img2img"),
        ("sd_hypernetwork", "anime", "hypernetworks"),
        ("enable_quantization", True, "quantized"),
        ("sd_noise_schedule", "Zero Terminal SNR", "zero terminal SNR"),
        ("use_old_emphasis_implementation", True, "1.10"),
    ],
)
def test_a_picture_changing_setting_this_worker_cannot_do_is_refused_by_name(key, value, why):
    with pytest.raises(PayloadError) as err:
        _read({key: value})
    assert f"override_settings.{key} {value!r} is not supported" in str(err.value) and why in str(err.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("token_merging_ratio", 0),
        ("sd_vae_decode_method", "Full"),
        ("enable_batch_seeds", True),
        ("sd_unet", None),
        ("sd_unet", "None"),
    ],
)
def test_the_same_setting_at_the_webui_default_is_accepted(key, value):
    s = _read({key: value})
    assert s.ignored_settings == [] and s.unknown_settings == []


def test_saving_and_ui_settings_are_ignored_and_other_keys_are_unknown_both_listed():
    s = _read({"samples_save": False, "jpeg_quality": 90, "upcast_attn": True, "control_net_max_models": 3, "zzz": 1})
    assert s.ignored_settings == ["jpeg_quality", "samples_save", "upcast_attn"]
    assert s.unknown_settings == ["control_net_max_models", "zzz"]


# ---- the payload's sampler fields, combined with the settings as the WebUI 1.10 does ----------------


def test_payload_sigma_fields_are_used_while_the_setting_is_at_k_diffusions_default():
    o = _read(s_churn=0.5, s_tmin=0.2, s_tmax=10, s_noise=0.95).sampling
    assert (o.s_churn, o.s_tmin, o.s_tmax, o.s_noise) == (0.5, 0.2, 10.0, 0.95)


def test_a_sigma_setting_away_from_the_default_wins_over_the_payload_as_in_the_webui():
    o = _read({"s_churn": 0.3, "s_noise": 1.0, "s_tmax": 5}, s_churn=0.5, s_noise=0.9, s_tmax=10).sampling
    assert (o.s_churn, o.s_noise, o.s_tmax) == (0.3, 0.9, 5.0)


@pytest.mark.parametrize("text", ['{"s_tmax": Infinity}', '{"s_tmax": 0}', "{}"])
def test_s_tmax_infinity_zero_or_absent_is_infinite(text):
    payload = parse_payload(text)
    assert read_settings({**payload, "override_settings": {}}, "txt2img").sampling.s_tmax == math.inf


def test_payload_eta_and_s_min_uncond_win_over_the_settings():
    o = _read({"eta_ancestral": 0.7, "s_min_uncond": 2.0}, eta=0.0, s_min_uncond=1.0).sampling
    assert (o.eta, o.eta_ancestral, o.s_min_uncond) == (0.0, 0.7, 1.0)


def test_payload_sigma_fields_are_validated():
    with pytest.raises(PayloadError, match="s_churn must be at least 0.0, got -1"):
        _read(s_churn=-1)
