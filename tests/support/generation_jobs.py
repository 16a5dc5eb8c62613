"""Helpers for generation tests: run a job on a Generator, build payloads, read PNGs and `info`."""

from __future__ import annotations

import base64
import io
import json


def run(generator, task: str, payload: dict, models: dict, progress=None):
    from openesd.generation import GenerationRequest

    return generator.run(GenerationRequest(task=task, payload=payload, models=models), progress)


def txt2img_payload(**overrides) -> dict:
    payload = {
        "prompt": "a red fox",
        "negative_prompt": "blurry",
        "seed": 42,
        "steps": 2,
        "width": 64,
        "height": 64,
        "sampler_name": "Euler",
        "cfg_scale": 7,
        "batch_size": 1,
        "n_iter": 1,
    }
    payload.update(overrides)
    return payload


def png(data: bytes):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def b64png(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def info(result) -> dict:
    return json.loads(result.info)
