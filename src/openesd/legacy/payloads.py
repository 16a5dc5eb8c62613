"""The server-side txt2img template of the one-call inference (esd-legacy-api.md §5.1 form B)."""

from __future__ import annotations

import copy

_CONTROLNET_UNIT = {
    "enabled": False,
    "module": "none",
    "model": "None",
    "weight": 1,
    "image": None,
    "resize_mode": "Crop and Resize",
    "low_vram": False,
    "processor_res": -1,
    "threshold_a": -1,
    "threshold_b": -1,
    "guidance_start": 0,
    "guidance_end": 1,
    "pixel_perfect": False,
    "control_mode": "Balanced",
    "is_ui": True,
    "input_mode": "simple",
    "batch_images": "",
    "output_dir": "",
    "loopback": False,
}

TEMPLATE = {
    "enable_hr": False,
    "denoising_strength": None,
    "firstphase_width": 0,
    "firstphase_height": 0,
    "hr_scale": 2.0,
    "hr_upscaler": "Latent",
    "hr_second_pass_steps": 0,
    "hr_resize_x": 0,
    "hr_resize_y": 0,
    "hr_sampler_name": None,
    "hr_prompt": "",
    "hr_negative_prompt": "",
    "prompt": "",
    "styles": [],
    "seed": -1,
    "subseed": -1,
    "subseed_strength": 0.0,
    "seed_resize_from_h": 0,
    "seed_resize_from_w": 0,
    "sampler_name": "Euler a",
    "batch_size": 1,
    "n_iter": 1,
    "steps": 28,
    "cfg_scale": 7.0,
    "width": 512,
    "height": 512,
    "restore_faces": False,
    "tiling": False,
    "do_not_save_samples": False,
    "do_not_save_grid": False,
    "negative_prompt": "",
    "eta": None,
    "s_min_uncond": 0.0,
    "s_churn": 0.0,
    "s_tmax": 1.0,
    "s_tmin": 0.0,
    "s_noise": 1.0,
    "override_settings": {},
    "override_settings_restore_afterwards": True,
    "script_args": [],
    "sampler_index": "Euler a",
    "script_name": None,
    "send_images": True,
    "save_images": False,
    "alwayson_scripts": {"controlnet": {"args": [_CONTROLNET_UNIT]}, "extra options": {"args": []}},
}


def one_call_payload(body: dict) -> dict:
    """The template shallow-merged with the whole request body (routing keys stay; workers ignore them)."""
    return {**copy.deepcopy(TEMPLATE), **body}
