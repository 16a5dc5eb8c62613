"""`/options` per user (a round trip through `webuiapi`), and the lists A1111 clients read to fill menus."""

from __future__ import annotations

import httpx

from tests.sdapi.conftest import PASSWORD, WebUIServer


def test_options_round_trip_per_user_and_the_stored_model_is_the_jobs_default(webui: WebUIServer):
    carol, bob = webui.client("carol"), webui.client("bob")
    title = carol.util_get_model_names()[0]

    carol.set_options({"sd_model_checkpoint": "tiny-sd15", "CLIP_stop_at_last_layers": 2})
    made = carol.txt2img(prompt="a cat", width=64, height=64, seed=1)

    assert carol.util_get_current_model() == title  # stored as the title, `name [short hash]`
    assert carol.get_options()["CLIP_stop_at_last_layers"] == 2
    assert bob.get_options()["CLIP_stop_at_last_layers"] == 1  # another user's settings are their own
    assert made.info["clip_skip"] == 2
    assert title.startswith("tiny-sd15.safetensors [") and made.info["sd_model_name"] == "tiny-sd15"


def test_an_option_the_worker_cannot_honour_or_does_not_know_is_refused_naming_it(webui: WebUIServer):
    alice = ("alice", PASSWORD)

    clip = httpx.post(f"{webui.sdapi}/options", auth=alice, json={"CLIP_stop_at_last_layers": 40})
    unknown = httpx.post(f"{webui.sdapi}/options", auth=alice, json={"no_such_setting": 1})
    refused = httpx.post(f"{webui.sdapi}/options", auth=alice, json={"sd_hypernetwork": "anime"})

    assert [a.status_code for a in (clip, unknown, refused)] == [400, 400, 400]
    assert "CLIP_stop_at_last_layers" in clip.json()["errors"]
    assert "no_such_setting" in unknown.json()["errors"]
    assert "hypernetworks are not supported" in refused.json()["errors"]
    assert httpx.get(f"{webui.sdapi}/options", auth=alice).json()["CLIP_stop_at_last_layers"] == 1


def test_the_lists_name_what_the_worker_runs_and_the_callers_files(webui: WebUIServer):
    api = webui.client()

    samplers = {s["name"]: s for s in api.get_samplers()}
    schedulers = {s["name"]: s for s in api.get_schedulers()}
    models = api.get_sd_models()
    upscalers = [u["name"] for u in api.get_upscalers()]

    assert samplers["DPM++ 2M"]["options"] == {"scheduler": "karras"} and "k_euler_a" in samplers["Euler a"]["aliases"]
    assert schedulers["karras"]["label"] == "Karras" and schedulers["karras"]["default_rho"] == 7.0
    assert [(m["model_name"], len(m["sha256"]), m["hash"]) for m in models] == [
        ("tiny-sd15", 64, models[0]["sha256"][:10])
    ]
    assert upscalers == ["None", "Lanczos", "Nearest", "R-ESRGAN 2x+"]
    assert "Latent (bicubic antialiased)" in [m["name"] for m in api.get_latent_upscale_modes()]
    assert "x/y/z plot" in api.get_scripts()["txt2img"]
    assert (api.get_loras(), api.get_embeddings(), api.get_sd_vae()) == ([], {"loaded": {}, "skipped": {}}, [])
    assert api.get_cmd_flags()["api"] is True and "total" in api.get_memory()["ram"]
