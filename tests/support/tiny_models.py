"""Tiny random-weight Stable Diffusion models of the real architectures, written as users upload them.

Every builder seeds torch itself, so the same call gives the same weights and the same file bytes.
The dimensions below are the contract for fixtures built elsewhere (LoRA, embeddings, ControlNet):
match them and your file fits these checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# SD 1.x-style tiny model.
SD15_UNET_CHANNELS = (32, 64)
SD15_LAYERS_PER_BLOCK = 2
SD15_CROSS_ATTENTION_DIM = 32  # = text encoder hidden size
SD15_ATTENTION_HEADS = 8  # SD 1.x: 8 heads in every attention block
TEXT_HIDDEN_SIZE = 32
TEXT_LAYERS = 2
TEXT_INTERMEDIATE = 64
TEXT_VOCAB = 49408  # the real CLIP vocabulary (the shipped tokenizer)
TEXT_POSITIONS = 77
# SDXL-style tiny model: CLIP-L-like (32) + OpenCLIP-bigG-like (64) -> 96-wide context. The two
# encoders must differ in width, as the real ones do (768 vs 1280): that is how loaders tell them apart.
SDXL_UNET_CHANNELS = (32, 64)
SDXL_TRANSFORMER_DEPTH = (1, 2)
TEXT2_HIDDEN_SIZE = 64
TEXT2_INTERMEDIATE = 128
SDXL_CROSS_ATTENTION_DIM = TEXT_HIDDEN_SIZE + TEXT2_HIDDEN_SIZE
SDXL_POOLED_DIM = 64  # text_encoder_2 projection_dim
SDXL_TIME_EMBED_DIM = 8  # addition_time_embed_dim
# SD 2.x-style tiny model: an OpenCLIP-H-like encoder whose last layer is unused (SD 2.x conditions on
# the penultimate layer; loaders drop layer 23 of 24), 64-channel heads, linear projections.
SD2_TEXT_LAYERS = 24
SD2_TEXT_HIDDEN_SIZE = 64
# VAE shared by all: two levels, so latents are 1/2 of the image side (real: 1/8).
VAE_CHANNELS = (32, 64)
VAE_LAYERS_PER_BLOCK = 1
LATENT_CHANNELS = 4
VAE_SCALE_FACTOR = 2 ** (len(VAE_CHANNELS) - 1)
SEED = 0


def _torch():
    import torch

    torch.manual_seed(SEED)
    return torch


def tiny_unet(family: str = "sd15", in_channels: int = 4) -> Any:
    """UNet2DConditionModel: "sd15" (conv projections, 8 heads), "sdxl" (text_time embedding) or
    "sdxl_refiner" (OpenCLIP context only, aesthetic score in the time ids)."""
    _torch()
    from diffusers import UNet2DConditionModel

    if family == "sdxl_refiner":
        return UNet2DConditionModel(
            sample_size=32,
            in_channels=in_channels,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=SDXL_UNET_CHANNELS,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=TEXT2_HIDDEN_SIZE,
            attention_head_dim=[1, 1],
            transformer_layers_per_block=list(SDXL_TRANSFORMER_DEPTH),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=SDXL_POOLED_DIM + 5 * SDXL_TIME_EMBED_DIM,
        )
    if family == "sd2":
        return UNet2DConditionModel(
            sample_size=32,
            in_channels=in_channels,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=SD15_UNET_CHANNELS,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=SD2_TEXT_HIDDEN_SIZE,
            attention_head_dim=[1, 1],
            use_linear_projection=True,
            upcast_attention=True,
        )
    if family == "sdxl":
        return UNet2DConditionModel(
            sample_size=32,
            in_channels=in_channels,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=SDXL_UNET_CHANNELS,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=SDXL_CROSS_ATTENTION_DIM,
            attention_head_dim=[1, 1],
            transformer_layers_per_block=list(SDXL_TRANSFORMER_DEPTH),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=SDXL_POOLED_DIM + 6 * SDXL_TIME_EMBED_DIM,
        )
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=SD15_LAYERS_PER_BLOCK,
        block_out_channels=SD15_UNET_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=SD15_CROSS_ATTENTION_DIM,
        attention_head_dim=SD15_ATTENTION_HEADS,
    )


def tiny_vae() -> Any:
    _torch()
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=VAE_CHANNELS,
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        down_block_types=["DownEncoderBlock2D"] * len(VAE_CHANNELS),
        up_block_types=["UpDecoderBlock2D"] * len(VAE_CHANNELS),
        layers_per_block=VAE_LAYERS_PER_BLOCK,
        sample_size=64,
    )


def _text_config(
    act: str, projection: int, hidden: int = TEXT_HIDDEN_SIZE, intermediate: int = TEXT_INTERMEDIATE
) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=TEXT_VOCAB,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=max(1, hidden // 64),
        max_position_embeddings=TEXT_POSITIONS,
        hidden_act=act,
        projection_dim=projection,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )


def tiny_text_encoder() -> Any:
    """CLIP-L-style CLIPTextModel (quick_gelu)."""
    _torch()
    from transformers import CLIPTextModel

    return CLIPTextModel(_text_config("quick_gelu", TEXT_HIDDEN_SIZE)).eval()


def tiny_text_encoder_2() -> Any:
    """OpenCLIP-bigG-style CLIPTextModelWithProjection (gelu, projection to SDXL_POOLED_DIM)."""
    _torch()
    from transformers import CLIPTextModelWithProjection

    config = _text_config("gelu", SDXL_POOLED_DIM, TEXT2_HIDDEN_SIZE, TEXT2_INTERMEDIATE)
    return CLIPTextModelWithProjection(config).eval()


def tiny_tokenizer(pad_token: str = "<|endoftext|>") -> Any:
    """The shipped real CLIP tokenizer (SDXL's second tokenizer pads with "!")."""
    import tempfile

    from transformers import CLIPTokenizer

    from openesd.generation.models._tokenizer import write_tokenizer

    config = json.loads(
        (Path(__file__).parents[2] / "src/openesd/generation/models/_configs/families.json").read_text()
    )
    folder = Path(tempfile.mkdtemp(prefix="openesd-tok-"))
    write_tokenizer(folder, dict(config["tokenizer"], pad_token=pad_token))
    return CLIPTokenizer.from_pretrained(folder)


def _scheduler() -> Any:
    """SD's own scheduler config (as in the v1-5 and SDXL repositories)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1, timestep_spacing="leading"
    )


def tiny_sd15_components(in_channels: int = 4) -> dict[str, Any]:
    """diffusers StableDiffusionPipeline components (scheduler: Euler) with tiny random weights."""
    return {
        "unet": tiny_unet("sd15", in_channels),
        "vae": tiny_vae(),
        "text_encoder": tiny_text_encoder(),
        "tokenizer": tiny_tokenizer(),
        "scheduler": _scheduler(),
        "safety_checker": None,
        "feature_extractor": None,
    }


def tiny_sd2_components() -> dict[str, Any]:
    """SD 2.x-style components; the text encoder has all 24 layers, as the OpenCLIP file does."""
    _torch()
    from transformers import CLIPTextConfig, CLIPTextModel

    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=TEXT_VOCAB,
            hidden_size=SD2_TEXT_HIDDEN_SIZE,
            intermediate_size=2 * SD2_TEXT_HIDDEN_SIZE,
            num_hidden_layers=SD2_TEXT_LAYERS,
            num_attention_heads=1,
            max_position_embeddings=TEXT_POSITIONS,
            hidden_act="gelu",
            projection_dim=SD2_TEXT_HIDDEN_SIZE,
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
        )
    ).eval()
    return {
        "unet": tiny_unet("sd2"),
        "vae": tiny_vae(),
        "text_encoder": text,
        "tokenizer": tiny_tokenizer("!"),
        "scheduler": _scheduler(),
        "safety_checker": None,
        "feature_extractor": None,
    }


def write_tiny_sd2_checkpoint(path: Path) -> Path:
    """SD 2.x A1111 single file: cond_stage_model.model.* (OpenCLIP layout, 24 resblocks)."""
    from openesd.modeltools.export import save_single_file

    return save_single_file(tiny_sd2_components(), Path(path), openclip_text=True)


def tiny_sdxl_components() -> dict[str, Any]:
    return {
        "unet": tiny_unet("sdxl"),
        "vae": tiny_vae(),
        "text_encoder": tiny_text_encoder(),
        "text_encoder_2": tiny_text_encoder_2(),
        "tokenizer": tiny_tokenizer(),
        "tokenizer_2": tiny_tokenizer("!"),
        "scheduler": _scheduler(),
    }


def tiny_sdxl_refiner_components() -> dict[str, Any]:
    return {
        "unet": tiny_unet("sdxl_refiner"),
        "vae": tiny_vae(),
        "text_encoder_2": tiny_text_encoder_2(),
        "tokenizer_2": tiny_tokenizer("!"),
        "scheduler": _scheduler(),
    }


def write_tiny_sd15_checkpoint(path: Path) -> Path:
    """SD 1.x A1111 single file: model.diffusion_model.*, first_stage_model.*,
    cond_stage_model.transformer.text_model.*"""
    from openesd.modeltools.export import save_single_file

    return save_single_file(tiny_sd15_components(), Path(path))


def write_tiny_sd15_inpaint_checkpoint(path: Path) -> Path:
    """SD 1.x inpainting single file: the UNet takes 9 channels (latents + mask + masked image)."""
    from openesd.modeltools.export import save_single_file

    return save_single_file(tiny_sd15_components(in_channels=9), Path(path))


def write_tiny_sdxl_checkpoint(path: Path) -> Path:
    """SDXL base A1111 single file: conditioner.embedders.0.transformer.* and embedders.1.model.* (OpenCLIP)."""
    from openesd.modeltools.export import save_single_file

    return save_single_file(tiny_sdxl_components(), Path(path))


def write_tiny_sdxl_refiner_checkpoint(path: Path) -> Path:
    """SDXL refiner A1111 single file: only conditioner.embedders.0.model.* (OpenCLIP-bigG layout)."""
    from openesd.modeltools.export import save_single_file

    return save_single_file(tiny_sdxl_refiner_components(), Path(path))


def write_tiny_vae(path: Path, seed: int = 1) -> Path:
    """Standalone A1111 VAE file (encoder.*, decoder.*, quant_conv.*), different weights from the checkpoints'."""
    import torch
    from safetensors.torch import save_file

    from openesd.modeltools.export import vae_to_ldm

    vae = tiny_vae()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = vae_to_ldm(vae.state_dict(), dict(vae.config), prefix="")
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


# -- Full-size architectures (random weights): the benchmark and the slow tests -------------------


def full_sd15_components() -> dict[str, Any]:
    """SD 1.5's real architecture (860M UNet, 84M VAE, CLIP ViT-L/14 text encoder), random weights."""
    _torch()
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
        )
    ).eval()
    return {
        "unet": unet,
        "vae": _full_vae(),
        "text_encoder": text,
        "tokenizer": tiny_tokenizer(),
        "scheduler": _scheduler(),
        "safety_checker": None,
        "feature_extractor": None,
    }


def full_sdxl_components() -> dict[str, Any]:
    """SDXL base's real architecture (2.6B UNet, CLIP-L + OpenCLIP-bigG), random weights."""
    _torch()
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    unet = UNet2DConditionModel(
        sample_size=128,
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        cross_attention_dim=2048,
        attention_head_dim=[5, 10, 20],
        transformer_layers_per_block=[1, 2, 10],
        use_linear_projection=True,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    )
    common = {
        "vocab_size": 49408,
        "max_position_embeddings": 77,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
    }
    text = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            hidden_act="quick_gelu",
            projection_dim=768,
            **common,
        )
    ).eval()
    text_2 = CLIPTextModelWithProjection(
        CLIPTextConfig(
            hidden_size=1280,
            intermediate_size=5120,
            num_hidden_layers=32,
            num_attention_heads=20,
            hidden_act="gelu",
            projection_dim=1280,
            **common,
        )
    ).eval()
    vae = _full_vae()
    vae.register_to_config(scaling_factor=0.13025)
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text,
        "text_encoder_2": text_2,
        "tokenizer": tiny_tokenizer(),
        "tokenizer_2": tiny_tokenizer("!"),
        "scheduler": _scheduler(),
    }


def _full_vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=512,
    )
