"""The base checkpoint as trainable parts: frozen weights, peft LoRA adapters, text conditioning.

The checkpoint is read by the generation package's single-file loader (one loader in OpenESD).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openesd.modelfiles.keys import FAMILY_NAMES
from openesd.trainer.errors import TrainingError

# The modules diffusers' and kohya's LoRA scripts adapt: UNet attention projections, CLIP attention.
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
_FAMILIES = {"sd_1_5": ("sd1", "sd2"), "sd_xl": ("sdxl",)}
_NOT_YET = ("flux", "sd3")  # families the worker can load and generate with, but not train yet


@dataclass
class Parts:
    """What the loop needs from the pipeline; text_encoders/tokenizers are in pipeline order."""

    family: str
    unet: Any
    vae: Any
    text_encoders: list[Any]
    tokenizers: list[Any]
    scheduler_config: dict[str, Any]


def load(path: Path, model_type: str) -> Parts:
    """Load on the CPU in fp32 (where peft wraps modules), checking the architecture matches `model_type`."""
    import torch

    from openesd.errors import OpenESDError
    from openesd.generation.models.loading import load_checkpoint

    if model_type not in _FAMILIES:
        raise TrainingError(f"model_type {model_type!r} is invalid; the valid values are sd_1_5 and sd_xl")
    try:
        loaded = load_checkpoint(Path(path), "cpu", torch.float32)
    except OpenESDError as exc:
        raise TrainingError(f"base model {Path(path).name!r} cannot be loaded: {exc.message}") from exc
    if loaded.family in _NOT_YET:  # the API refuses these first; a file changed behind its record lands here
        label = FAMILY_NAMES[loaded.family]
        raise TrainingError(
            f"base model {Path(path).name!r} is a {label} checkpoint: LoRA training for {label} models is not "
            "supported yet"
        )
    if loaded.family not in _FAMILIES[model_type] or loaded.inpainting:
        kind = loaded.family + (" inpainting" if loaded.inpainting else "")
        raise TrainingError(f"base model {Path(path).name!r} is a {kind} checkpoint, not {model_type}")
    pipe = loaded.pipe
    encoders = [e for e in (getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)) if e]
    tokenizers = [t for t in (getattr(pipe, "tokenizer", None), getattr(pipe, "tokenizer_2", None)) if t]
    return Parts(loaded.family, pipe.unet, pipe.vae, encoders, tokenizers, dict(pipe.scheduler.config))


def freeze_and_place(parts: Parts, device: Any, weight_dtype: Any) -> None:
    """Frozen weights in the compute dtype (half on a GPU saves memory and bandwidth); VAE in fp32
    because SD's VAEs overflow in fp16 and it only encodes."""
    for module in (parts.unet, parts.vae, *parts.text_encoders):
        module.requires_grad_(False)
    parts.vae.to(device, dtype=parts.vae.dtype)
    parts.unet.to(device, dtype=weight_dtype)
    for encoder in parts.text_encoders:
        encoder.to(device, dtype=weight_dtype)


def add_adapters(parts: Parts, config: Any) -> dict[str, Any]:
    """peft LoRA on the UNet and/or text encoders; returns {part name: module} of what trains.

    LoRA parameters stay fp32 (master weights) whatever the frozen dtype, so small updates are not
    lost to half-precision rounding; autocast runs the matmuls in half.
    """
    import torch
    from peft import LoraConfig

    trained: dict[str, Any] = {}
    if config.train_unet:
        parts.unet.add_adapter(_lora(LoraConfig, config, UNET_TARGETS, "gaussian"))
        trained["unet"] = parts.unet
    if config.train_text_encoder:
        names = ["text_encoder", "text_encoder_2"]
        for name, encoder in zip(names, parts.text_encoders):
            encoder.add_adapter(_lora(LoraConfig, config, TEXT_TARGETS, "gaussian"))
            trained[name] = encoder
    for module in trained.values():
        for param in module.parameters():
            if param.requires_grad:
                param.data = param.data.to(torch.float32)
    return trained


def _lora(cls: Any, config: Any, targets: list[str], init: str) -> Any:
    # kohya's scale is alpha/dim, which is peft's lora_alpha/r: the saved alpha means the same thing.
    return cls(r=config.network_dim, lora_alpha=config.network_alpha, init_lora_weights=init, target_modules=targets)


def tokenize(parts: Parts, captions: list[str], device: Any) -> list[Any]:
    return [
        tok(
            captions, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(device)
        for tok in parts.tokenizers
    ]


def encode_text(parts: Parts, ids: list[Any], clip_skip: int) -> tuple[Any, Any]:
    """(prompt embeddings, pooled embeddings or None), as kohya conditions each family."""
    import torch

    if parts.family != "sdxl":
        out = parts.text_encoders[0](ids[0], output_hidden_states=True)
        if clip_skip == 1:
            return out.last_hidden_state, None
        # kohya (and A1111) take an earlier layer and still apply the final layer norm.
        hidden = out.hidden_states[-clip_skip]
        encoder = parts.text_encoders[0]
        return getattr(encoder, "text_model", encoder).final_layer_norm(
            hidden
        ), None  # transformers 5 flattened CLIPTextModel
    # SDXL conditions on the penultimate layer of both encoders (clip_skip is fixed at 2 there),
    # plus the projected pooled output of the second.
    first = parts.text_encoders[0](ids[0], output_hidden_states=True)
    second = parts.text_encoders[1](ids[1], output_hidden_states=True)
    embeds = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
    return embeds, second.text_embeds


def time_ids(original: tuple[int, int], crop: tuple[int, int], target: tuple[int, int], device: Any) -> Any:
    """SDXL's micro-conditioning: original (h, w), crop (top, left), target (h, w)."""
    import torch

    return torch.tensor(
        [original[1], original[0], crop[0], crop[1], target[1], target[0]], dtype=torch.float32, device=device
    )
