"""Model family and kind from a state dict's key names (and a few shapes), with no torch.

Layouts: A1111/LDM single files, kohya and diffusers LoRAs, LDM and diffusers ControlNets and VAEs,
BFL (FLUX.1) and SD3 transformers. The worker derives its configs from the same prefixes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP_L_SD1 = "cond_stage_model.transformer.text_model."
OPENCLIP_SD2 = "cond_stage_model.model."
CLIP_L_XL = "conditioner.embedders.0.transformer.text_model."
OPENCLIP_XL = "conditioner.embedders.1.model."
OPENCLIP_REFINER = "conditioner.embedders.0.model."

FAMILY_NAMES = {
    "sd1": "SD 1.x",
    "sd2": "SD 2.x",
    "sdxl": "SDXL",
    "sdxl_refiner": "SDXL refiner",
    "flux": "FLUX.1",
    "sd3": "SD 3",
    # Diffusion transformers whose files are recognised but which the worker cannot run yet.
    "flux2": "FLUX.2",
    "chroma": "Chroma",
    "auraflow": "AuraFlow",
    "hidream": "HiDream-I1",
    "lumina2": "Lumina 2",
    "qwen_image": "Qwen-Image",
    # Text encoder files (`text_encoder` checkpoints).
    "clip": "CLIP text encoder",
    "t5": "T5 text encoder",
    "unknown": "unknown",
}
KIND_NAMES = {
    "checkpoint": "full Stable Diffusion model",
    "lora": "LoRA",
    "controlnet": "ControlNet",
    "vae": "VAE",
    "embedding": "textual-inversion embedding",
    "text_encoder": "text encoder",
    "unknown": "unknown model",
}

# Families recognised by a key no FLUX.1/SD 3 file has; checked before FLUX.1 (Chroma and FLUX.2 reuse its names).
UNSUPPORTED_FAMILIES = {
    "chroma": re.compile(r"(^|\.)distilled_guidance_layer\."),
    "flux2": re.compile(r"(^|\.)(double|single)_stream_modulation"),
    "auraflow": re.compile(r"(^|\.)(double_layers\.\d+\.attn\.w1q|cond_seq_linear)\."),
    "hidream": re.compile(r"(^|\.)double_stream_blocks\.\d+\.block\."),
    "lumina2": re.compile(r"(^|\.)(cap_embedder|noise_refiner)\."),
    "qwen_image": re.compile(r"(^|\.)transformer_blocks\.\d+\.img_mod\.1\."),
}
# Text encoder files as shared: transformers' own keys, bare or under `text_encoders.<name>.transformer.`.
_CLIP_TEXT = re.compile(r"^(text_encoders\.\w+\.transformer\.)?text_model\.embeddings\.token_embedding\.weight$")
_T5_TEXT = re.compile(r"^(text_encoders\.\w+\.transformer\.)?encoder\.block\.0\.layer\.0\.SelfAttention\.q\.weight$")
_TEXT = re.compile(r"(^|\.)(text_model|encoder\.block)\.")
_FLUX = re.compile(r"(^|\.)(double_blocks|single_blocks|single_transformer_blocks)[._]|_(double|single)_blocks_")
_SD3 = re.compile(r"(^|\.)joint_blocks\.|_joint_blocks_")
_LORA = re.compile(
    r"^lora_(unet|te\d?)_|\.lora_(down|up|A|B)\.|\.lora\.(down|up)\.|\.(hada_w1_a|lokr_w1)$|\.lora_(A|B)\.default\."
)
_CONTROLNET = re.compile(r"^control_model\.|(^|\.)input_hint_block\.|^controlnet_(cond_embedding|down_blocks)\.")
_VAE = re.compile(r"^(first_stage_model\.)?(encoder|decoder)\.")
_EMBEDDING = {"emb_params", "clip_l", "clip_g", "string_to_param", "string_to_token"}
# A LoRA's cross-attention key input width is its base model's context width (real models only).
_CROSS_ATTENTION = re.compile(r"attn2[._]to_k.*(lora_down|lora_A|lora\.down)[._]weight$")
_CONTEXT_FAMILY = {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl_refiner"}


def kind_of(keys: Collection[str]) -> str:
    """checkpoint | lora | controlnet | vae | text_encoder | embedding | unknown."""
    if any(_LORA.search(k) for k in keys):
        return "lora"
    if any(_CONTROLNET.search(k) for k in keys):
        return "controlnet"
    if any(k.startswith(UNET) or _FLUX.search(k) or _SD3.search(k) for k in keys):
        return "checkpoint"
    if any(_CLIP_TEXT.match(k) or _T5_TEXT.match(k) for k in keys):
        return "text_encoder"
    if any(_VAE.match(k) for k in keys):  # VAE files also carry quant_conv.*, some loss.* too
        return "vae"
    if keys and any(k.split(".")[0] in _EMBEDDING for k in keys) and len(keys) <= 8:
        return "embedding"
    return "unknown"


def checkpoint_family(keys: Collection[str]) -> str:
    """sd1 | sd2 | sdxl | sdxl_refiner | flux | sd3 | one of UNSUPPORTED_FAMILIES | unknown, for a full model's keys."""
    for family, signature in UNSUPPORTED_FAMILIES.items():
        if any(signature.search(k) for k in keys):
            return family
    if any(_FLUX.search(k) for k in keys):
        return "flux"
    if any(_SD3.search(k) for k in keys):
        return "sd3"
    if not any(k.startswith(UNET) for k in keys):
        return "unknown"
    if f"{OPENCLIP_XL}positional_embedding" in keys:
        return "sdxl"
    if f"{OPENCLIP_REFINER}positional_embedding" in keys:
        return "sdxl_refiner"
    if f"{OPENCLIP_SD2}token_embedding.weight" in keys:
        return "sd2"
    if f"{CLIP_L_SD1}embeddings.token_embedding.weight" in keys:
        return "sd1"
    return "unknown"


def lora_family(shapes: Mapping[str, Sequence[int]]) -> str:
    """A LoRA's base family: SDXL and FLUX.1 by key names, SD 1.x/2.x by the real context width."""
    if any(_FLUX.search(k) for k in shapes):
        return "flux"
    if any(_SD3.search(k) for k in shapes):
        return "sd3"
    sgm_unet = ("lora_unet_input_blocks_", "lora_unet_output_blocks_", "lora_unet_middle_block_")
    if any(k.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.", *sgm_unet)) for k in shapes):
        return "sdxl"
    for key, shape in shapes.items():
        if _CROSS_ATTENTION.search(key) and len(shape) == 2:
            return _CONTEXT_FAMILY.get(int(shape[1]), "unknown")
    return "unknown"


def text_encoder_family(keys: Collection[str]) -> str:
    """clip | t5 | unknown: which text encoder a `text_encoder` file holds."""
    if any(_T5_TEXT.match(k) for k in keys):
        return "t5"
    if any(_CLIP_TEXT.match(k) for k in keys):
        return "clip"
    return "unknown"


def family_of(kind: str, shapes: Mapping[str, Sequence[int]]) -> str:
    """The family of a file of this kind; "unknown" where the keys cannot tell."""
    if kind == "checkpoint":
        return checkpoint_family(shapes.keys())
    if kind == "text_encoder":
        return text_encoder_family(shapes.keys())
    if kind == "lora":
        return lora_family(shapes)
    return "unknown"


def example_key(keys: Collection[str], kind: str) -> str:
    """One key that shows the kind, for messages."""
    pattern = {"lora": _LORA, "controlnet": _CONTROLNET, "vae": _VAE, "text_encoder": _TEXT}.get(kind)
    for key in sorted(keys):
        if pattern is None and kind == "checkpoint" and (key.startswith(UNET) or _FLUX.search(key) or _SD3.search(key)):
            return key
        if pattern is not None and pattern.search(key):
            return key
    return next(iter(sorted(keys)), "")
