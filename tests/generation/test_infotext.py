"""The infotext is the WebUI 1.10's: its keys, order and formatting, so that the WebUI's "PNG info" reads the
settings back. The parser here follows the documented format (prompt lines, "Negative prompt:" lines, then
one line of `Key: value` pairs joined by ", ", a value holding , : or a newline written as a JSON string),
and the labels map to settings as the WebUI's options declare them (OptionInfo(..., infotext=...))."""

from __future__ import annotations

import json

import pytest

from openesd.generation.payload.settings import read_settings
from openesd.generation.tasks.infotext import InfoBuilder, split_sampler

# Infotext label -> override_settings key, from the WebUI 1.10 options' `infotext=` labels.
LABEL_TO_SETTING = {
    "Clip skip": "CLIP_stop_at_last_layers",
    "ENSD": "eta_noise_seed_delta",
    "RNG": "randn_source",
    "Emphasis": "emphasis",
    "Eta": "eta_ancestral",
    "Eta DDIM": "eta_ddim",
    "Sigma churn": "s_churn",
    "Sigma tmin": "s_tmin",
    "Sigma tmax": "s_tmax",
    "Sigma noise": "s_noise",
    "Schedule min sigma": "sigma_min",
    "Schedule max sigma": "sigma_max",
    "Schedule rho": "rho",
    "Discard penultimate sigma": "always_discard_next_to_last_sigma",
    "SGM noise multiplier": "sgm_noise_multiplier",
    "NGMS": "s_min_uncond",
    "Skip Early CFG": "skip_early_cond",
    "Tiling": "tiling",
}


def parse(text: str) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative prompt, {key: value}) from an infotext."""
    *head, last = text.split("\n")
    prompt, negative, in_negative = [], [], False
    for line in head:
        if line.startswith("Negative prompt: "):
            in_negative, line = True, line[len("Negative prompt: ") :]
        (negative if in_negative else prompt).append(line)
    return "\n".join(prompt), "\n".join(negative), _pairs(last)


def _pairs(line: str) -> dict[str, str]:
    pairs, i = {}, 0
    while i < len(line):
        colon = line.index(": ", i)
        key, i = line[i:colon], colon + 2
        if line[i] == '"':
            value, end = json.JSONDecoder().raw_decode(line, i)
        else:
            end = line.find(", ", i)
            end = len(line) if end < 0 else end
            value = line[i:end]
        pairs[key], i = value, end + 2
    return pairs


def _settings(override: dict | None = None, **payload):
    body = {"prompt": "a (red) fox", "negative_prompt": "blurry", "seed": 7, "steps": 20, **payload}
    return read_settings({**body, "override_settings": override or {}}, "txt2img")


def _infotext(settings, *, vae=None, extra=None, seed=7) -> str:
    info = InfoBuilder(settings, None, vae, seed, -1, extra=extra or {})
    return info.add_image(settings.prompt, settings.negative_prompt, seed, seed + 1, (settings.width, settings.height))


def test_keys_come_in_the_webui_order(tmp_path):
    vae = tmp_path / "vae-ft-mse.safetensors"
    vae.write_bytes(b"vae")
    s = _settings(
        {
            "CLIP_stop_at_last_layers": 2,
            "eta_noise_seed_delta": 31337,
            "randn_source": "CPU",
            "emphasis": "No norm",
            "eta_ancestral": 0.5,
            "always_discard_next_to_last_sigma": True,
            "sigma_max": 10,
        },
        sampler_name="DPM++ 2S a Karras",
        subseed_strength=0.2,
        seed_resize_from_w=256,
        seed_resize_from_h=256,
        tiling=True,
        enable_hr=True,
    )
    _, _, pairs = parse(_infotext(s, vae=vae, extra={"Lora hashes": "style: 0123456789"}))
    assert list(pairs) == [
        "Steps",
        "Sampler",
        "Schedule type",
        "CFG scale",
        "Seed",
        "Size",
        "VAE hash",
        "VAE",
        "Variation seed",
        "Variation seed strength",
        "Seed resize from",
        "Denoising strength",
        "Clip skip",
        "ENSD",
        "RNG",
        "Tiling",
        "Lora hashes",
        "Emphasis",
        "Discard penultimate sigma",
        "Schedule max sigma",
        "Eta",
        "Version",
    ]
    assert pairs["VAE"] == "vae-ft-mse.safetensors"  # with its extension, as sd_vae takes it
    assert pairs["Lora hashes"] == "style: 0123456789"  # quoted in the text, read back whole


def test_pasting_the_infotext_back_gives_the_same_settings():
    override = {
        "CLIP_stop_at_last_layers": 2,
        "eta_noise_seed_delta": 31337,
        "randn_source": "NV",
        "emphasis": "Ignore",
        "eta_ancestral": 0.6,
        "sigma_min": 0.05,
        "sigma_max": 12.5,
        "rho": 5.0,
        "sgm_noise_multiplier": True,
        "s_min_uncond": 1.5,
    }
    original = _settings(override, sampler_name="DPM++ 2S a", scheduler="karras", cfg_scale=6.5, width=640)
    prompt, negative, pairs = parse(_infotext(original))
    pasted = {LABEL_TO_SETTING[k]: v for k, v in pairs.items() if k in LABEL_TO_SETTING}
    again = _settings(
        {k: _typed(v) for k, v in pasted.items()},
        prompt=prompt,
        negative_prompt=negative,
        sampler_name=pairs["Sampler"],
        scheduler=pairs["Schedule type"],
        cfg_scale=float(pairs["CFG scale"]),
        steps=int(pairs["Steps"]),
        seed=int(pairs["Seed"]),
        width=int(pairs["Size"].split("x")[0]),
        height=int(pairs["Size"].split("x")[1]),
    )
    assert again.sampling == original.sampling
    assert (again.prompt, again.negative_prompt, again.clip_skip) == (original.prompt, original.negative_prompt, 2)
    assert (again.cfg_scale, again.steps, again.seed, again.width, again.height) == (6.5, 20, 7, 640, 512)
    assert split_sampler(again.sampler_name, again.scheduler) == ("DPM++ 2S a", "Karras")


def _typed(value: str):
    if value in ("True", "False"):
        return value == "True"
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def test_defaults_write_the_schedule_type_and_no_rng():
    _, _, pairs = parse(_infotext(_settings()))
    assert (pairs["Sampler"], pairs["Schedule type"], pairs["CFG scale"]) == ("Euler a", "Automatic", "7.0")
    assert "RNG" not in pairs and "ENSD" not in pairs and "Eta" not in pairs and "Clip skip" not in pairs


@pytest.mark.parametrize(
    ("sampler", "scheduler", "expected"),
    [
        ("DPM++ 2M", None, ("DPM++ 2M", "Karras")),  # Automatic is the sampler's own schedule
        ("DPM++ 2M SDE", "Automatic", ("DPM++ 2M SDE", "Exponential")),
        ("DPM++ 2M Karras", None, ("DPM++ 2M", "Karras")),
        ("Euler", "sgm_uniform", ("Euler", "SGM Uniform")),
        ("Euler a", None, ("Euler a", "Automatic")),
        ("DDIM", None, ("DDIM", "Automatic")),
    ],
)
def test_sampler_and_schedule_type_are_written_as_the_webui_resolves_them(sampler, scheduler, expected):
    _, _, pairs = parse(_infotext(_settings(sampler_name=sampler, scheduler=scheduler)))
    assert (pairs["Sampler"], pairs["Schedule type"]) == expected


@pytest.mark.parametrize(
    ("sampler", "payload", "written"),
    [
        ("Euler a", {}, True),
        ("DPM2 a", {}, True),
        ("Euler", {}, False),  # Euler does not use ENSD
        ("Euler a", {"eta": 0}, False),  # no ancestral noise, so no ENSD
        ("DPM++ 2M SDE", {}, False),  # Brownian noise, not ENSD
    ],
)
def test_ensd_is_written_only_where_the_sampler_uses_it(sampler, payload, written):
    _, _, pairs = parse(_infotext(_settings({"eta_noise_seed_delta": 31337}, sampler_name=sampler, **payload)))
    assert ("ENSD" in pairs) is written and pairs.get("ENSD", "31337") == "31337"


@pytest.mark.parametrize(("source", "written"), [("GPU", None), ("CPU", "CPU"), ("NV", "NV")])
def test_rng_is_written_when_it_is_not_the_webui_default_gpu(source, written):
    _, _, pairs = parse(_infotext(_settings({"randn_source": source})))
    assert pairs.get("RNG") == written


def test_sigma_entries_only_for_samplers_given_them():
    override = {"s_churn": 0.5, "s_noise": 0.9}
    _, _, euler = parse(_infotext(_settings(override, sampler_name="Euler")))
    _, _, sde = parse(_infotext(_settings(override, sampler_name="DPM++ 2M SDE")))
    _, _, ancestral = parse(_infotext(_settings(override, sampler_name="Euler a")))
    assert (euler["Sigma churn"], euler["Sigma noise"]) == ("0.5", "0.9")
    assert "Sigma churn" not in sde and sde["Sigma noise"] == "0.9"
    assert "Sigma churn" not in ancestral and "Sigma noise" not in ancestral


def test_eta_ddim_and_schedule_entries():
    _, _, ddim = parse(_infotext(_settings({"eta_ddim": 0.3, "sigma_min": 0.1}, sampler_name="DDIM")))
    assert ddim["Eta DDIM"] == "0.3" and "Schedule min sigma" not in ddim  # DDIM takes no sigma schedule
    _, _, euler = parse(_infotext(_settings({"sigma_min": 0.1}, sampler_name="Euler")))
    assert "Schedule min sigma" not in euler  # the model's own schedule: the setting is not used
    _, _, karras = parse(_infotext(_settings({"sigma_min": 0.1, "rho": 7}, sampler_name="Euler", scheduler="Karras")))
    assert karras["Schedule min sigma"] == "0.1" and "Schedule rho" not in karras  # 7 is Karras' own rho
    _, _, dpm2 = parse(_infotext(_settings({"always_discard_next_to_last_sigma": True}, sampler_name="DPM2")))
    assert "Discard penultimate sigma" not in dpm2  # DPM2 discards it anyway


@pytest.mark.parametrize(
    ("mode", "prompt", "written"),
    [("No norm", "a (red) fox", "No norm"), ("No norm", "a red fox", None), ("Original", "a (red) fox", None)],
)
def test_emphasis_is_written_when_it_is_not_original_and_a_bracket_is_used(mode, prompt, written):
    _, _, pairs = parse(_infotext(_settings({"emphasis": mode}, prompt=prompt, negative_prompt="")))
    assert pairs.get("Emphasis") == written


def test_quoting_follows_the_webui():
    text = _infotext(_settings(), extra={"A": 'say "hi"', "B": "x, y", "C": "a: b"})
    assert 'A: say "hi", B: "x, y", C: "a: b"' in text


def test_info_lists_ignored_and_unknown_settings():
    s = _settings({"samples_save": True, "my_extension_option": 1, "s_noise": 0.9}, sampler_name="Euler")
    info = InfoBuilder(s, None, None, 7, -1)
    info.add_image(s.prompt, s.negative_prompt, 7, 8, (512, 512))
    data = json.loads(info.info_json())
    assert data["ignored_settings"] == ["samples_save"] and data["unknown_settings"] == ["my_extension_option"]
    assert data["extra_generation_params"] == {"Sigma noise": 0.9}
    assert data["sampler_name"] == "Euler"


def test_an_alias_is_written_as_the_sampler_it_runs_with_its_entries():
    _, _, pairs = parse(
        _infotext(_settings({"eta_ancestral": 0.5, "eta_noise_seed_delta": 31337}, sampler_name="k_euler_a"))
    )
    assert (pairs["Sampler"], pairs["Eta"], pairs["ENSD"]) == ("Euler a", "0.5", "31337")


def test_an_explicit_scheduler_wins_over_a_combined_names_suffix_as_the_job_runs():
    # samplers.resolve keeps an explicit choice (the WebUI lets the suffix win); the infotext says what ran
    _, _, pairs = parse(_infotext(_settings(sampler_name="DPM++ 2M Karras", scheduler="Exponential")))
    assert (pairs["Sampler"], pairs["Schedule type"]) == ("DPM++ 2M", "Exponential")


def test_sgm_noise_multiplier_is_written_by_txt2img_only_before_eta():
    override = {"sgm_noise_multiplier": True, "eta_ancestral": 0.5}
    txt2img = _infotext(_settings(override, sampler_name="Euler a"))
    assert txt2img.endswith("SGM noise multiplier: True, Eta: 0.5, Version: OpenESD")
    img2img = read_settings(
        {"prompt": "a fox", "init_images": ["x"], "sampler_name": "Euler a", "override_settings": override}, "img2img"
    )
    _, _, pairs = parse(_infotext(img2img))  # KDiffusionSampler.sample_img2img writes none
    assert "SGM noise multiplier" not in pairs and pairs["Eta"] == "0.5"


def test_info_holds_the_schedule_type_get_sigmas_writes():
    for sampler, scheduler, written in [("DPM++ 2M", None, "Karras"), ("Euler", "Beta", "Beta"), ("Euler", None, None)]:
        s = _settings(sampler_name=sampler, scheduler=scheduler)
        info = InfoBuilder(s, None, None, 7, -1)
        info.add_image(s.prompt, s.negative_prompt, 7, 8, (512, 512))
        assert json.loads(info.info_json())["extra_generation_params"].get("Schedule type") == written
        assert parse(info.infotexts[0])[2]["Schedule type"] == (written or "Automatic")


def test_a_sampler_that_does_not_resolve_is_written_as_given():
    _, _, pairs = parse(
        _infotext(_settings({"eta_noise_seed_delta": 31337}, sampler_name="DPM adaptive", scheduler="karras"))
    )
    assert (pairs["Sampler"], pairs["Schedule type"]) == ("DPM adaptive", "Karras") and "ENSD" not in pairs
    assert split_sampler("Fancy", "nonsense") == ("Fancy", "nonsense")
