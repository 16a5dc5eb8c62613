"""WebUI (AUTOMATIC1111) request bodies for txt2img and img2img, as ESD workers expect them (§14)."""

from __future__ import annotations

import base64
from pathlib import Path


def txt2img_payload(
    prompt: str,
    *,
    negative_prompt: str = "",
    steps: int = 20,
    width: int = 512,
    height: int = 512,
    seed: int = -1,
    sampler: str = "DPM++ 2M Karras",
    cfg_scale: float = 7.0,
    batch_size: int = 1,
    loras: dict[str, float] | None = None,
) -> dict:
    """A minimal WebUI txt2img body; LoRAs go into the prompt as `<lora:name:weight>`, as in the WebUI."""
    extra = "".join(f" <lora:{name}:{weight:g}>" for name, weight in (loras or {}).items())
    return {
        "prompt": prompt + extra,
        "negative_prompt": negative_prompt,
        "seed": seed,
        "steps": steps,
        "width": width,
        "height": height,
        "sampler_name": sampler,
        "cfg_scale": cfg_scale,
        "batch_size": batch_size,
        "n_iter": 1,
        "send_images": True,
        "save_images": False,
    }


def img2img_payload(image: str | Path, prompt: str, *, denoising_strength: float = 0.75, **options) -> dict:
    """txt2img's body plus the init image (a data URL) and the denoising strength."""
    path = Path(image)
    mime = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else path.suffix.lower().lstrip(".") or "png"
    encoded = base64.b64encode(path.read_bytes()).decode()
    payload = txt2img_payload(prompt, **options)
    payload.update(
        init_images=[f"data:image/{mime};base64,{encoded}"], denoising_strength=denoising_strength, resize_mode=0
    )
    return payload


def lora_models(loras: dict[str, float] | None) -> list[str]:
    """`cat` LoRA name -> the file name the `models` map lists (`cat.safetensors`)."""
    return [name if "." in name else f"{name}.safetensors" for name in (loras or {})]
