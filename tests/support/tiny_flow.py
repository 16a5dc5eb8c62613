"""Tiny random-weight FLUX.1 and SD 3.5 pipelines of the real architectures (flow-matching families).

Like `tiny_models`, every builder seeds torch itself, so the same call gives the same weights. The
dimensions below are the contract for fixtures built elsewhere (single files, LoRAs, quantised
files): match them and your file fits these models.

Both families share the tiny T5 (T5 v1.1: gated-gelu, no tied embeddings) and the tiny CLIP-L of
`tiny_models`; SD 3.5 adds a CLIP-G-like encoder. Their VAE has 16 latent channels and no quant
convs, as the real FLUX/SD3 VAE.
"""

from __future__ import annotations

from typing import Any

from tests.support.tiny_models import (
    TEXT2_HIDDEN_SIZE,
    TEXT_HIDDEN_SIZE,
    VAE_CHANNELS,
    _text_config,
    _torch,
    tiny_text_encoder,
    tiny_text_encoder_2,
    tiny_tokenizer,
)

FLOW_LATENT_CHANNELS = 16
T5_VOCAB = 32128  # the real T5 vocabulary size (token embedding rows)
T5_D_MODEL = 96  # >= CLIP-L + CLIP-G (32 + 64): SD 3 pads the joined CLIP states to T5's width
T5_LAYERS = 1
T5_HEADS = 2
T5_D_KV = 16
T5_D_FF = 64
T5_MAX_LENGTH = 32  # tokens the tiny pipelines give T5 (real: 512 for FLUX dev, 256 for SD 3.5)
# FLUX: 2x2-packed 16-channel latents -> 64 input channels; rope axes add up to the head dim.
FLUX_LAYERS = 1
FLUX_SINGLE_LAYERS = 1
FLUX_HEADS = 2
FLUX_HEAD_DIM = 16
FLUX_ROPE_AXES = (4, 6, 6)
# SD 3.5: patch 2, joint attention over T5 width, pooled = CLIP-L + CLIP-G projections.
SD3_LAYERS = 2
SD3_HEADS = 2
SD3_HEAD_DIM = 16
SD3_POS_EMBED_MAX = 32
# VAE scale/shift of the real FLUX and SD 3 autoencoders (latents = (x - shift) * scale).
FLUX_VAE_SCALE, FLUX_VAE_SHIFT = 0.3611, 0.1159
SD3_VAE_SCALE, SD3_VAE_SHIFT = 1.5305, 0.0609


def tiny_flow_vae(family: str = "flux") -> Any:
    """AutoencoderKL with 16 latent channels and no quant convs (FLUX.1 / SD 3 layout)."""
    _torch()
    from diffusers import AutoencoderKL

    scale, shift = (FLUX_VAE_SCALE, FLUX_VAE_SHIFT) if family == "flux" else (SD3_VAE_SCALE, SD3_VAE_SHIFT)
    return AutoencoderKL(
        block_out_channels=VAE_CHANNELS,
        in_channels=3,
        out_channels=3,
        latent_channels=FLOW_LATENT_CHANNELS,
        down_block_types=["DownEncoderBlock2D"] * len(VAE_CHANNELS),
        up_block_types=["UpDecoderBlock2D"] * len(VAE_CHANNELS),
        layers_per_block=1,
        sample_size=64,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=scale,
        shift_factor=shift,
    )


def tiny_t5() -> Any:
    """T5EncoderModel, v1.1 layout (gated-gelu feed-forward), the real vocabulary size."""
    _torch()
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=T5_VOCAB,
        d_model=T5_D_MODEL,
        d_kv=T5_D_KV,
        d_ff=T5_D_FF,
        num_layers=T5_LAYERS,
        num_heads=T5_HEADS,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=128,  # the real T5's (a file's shapes cannot tell it)
    )
    return T5EncoderModel(config).eval()


def tiny_t5_tokenizer() -> Any:
    """A T5TokenizerFast over a small character-level Unigram vocabulary (ids < T5_VOCAB).

    The real T5 vocabulary is not needed for the architecture: this one tokenises any prompt, keeps
    T5's special ids (pad 0, eos 1, unk 2) and stays offline.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(ch, -3.0) for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,.:()!?'-"]
    pieces += [("▁" + word, -1.0) for word in ("a", "the", "cat", "dog", "photo", "of", "red", "blue", "house")]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    return T5TokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )


def _flow_scheduler(family: str) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    if family == "flux":  # FLUX.1-dev's scheduler config: resolution-dependent shift
        return FlowMatchEulerDiscreteScheduler(
            shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
            base_image_seq_len=256, max_image_seq_len=4096,
        )  # fmt: skip
    return FlowMatchEulerDiscreteScheduler(shift=3.0)  # SD 3.5's


def tiny_flux_transformer(guidance: bool = True) -> Any:
    """FluxTransformer2DModel: guidance embedding for "dev" (`guidance=True`), none for "schnell"."""
    _torch()
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=FLOW_LATENT_CHANNELS * 4,
        num_layers=FLUX_LAYERS,
        num_single_layers=FLUX_SINGLE_LAYERS,
        attention_head_dim=FLUX_HEAD_DIM,
        num_attention_heads=FLUX_HEADS,
        joint_attention_dim=T5_D_MODEL,
        pooled_projection_dim=TEXT_HIDDEN_SIZE,
        guidance_embeds=guidance,
        axes_dims_rope=FLUX_ROPE_AXES,
    ).eval()


def tiny_flux_components(guidance: bool = True) -> dict[str, Any]:
    """diffusers FluxPipeline components with tiny random weights (dev layout by default)."""
    return {
        "transformer": tiny_flux_transformer(guidance),
        "vae": tiny_flow_vae("flux"),
        "text_encoder": tiny_text_encoder(),
        "tokenizer": tiny_tokenizer(),
        "text_encoder_2": tiny_t5(),
        "tokenizer_2": tiny_t5_tokenizer(),
        "scheduler": _flow_scheduler("flux"),
    }


def tiny_sd3_transformer() -> Any:
    """SD3Transformer2DModel in the SD 3.5 layout (RMS qk-norm; the first block has dual attention, as Medium)."""
    _torch()
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=FLOW_LATENT_CHANNELS,
        out_channels=FLOW_LATENT_CHANNELS,
        num_layers=SD3_LAYERS,
        attention_head_dim=SD3_HEAD_DIM,
        num_attention_heads=SD3_HEADS,
        joint_attention_dim=T5_D_MODEL,
        caption_projection_dim=SD3_HEADS * SD3_HEAD_DIM,
        pooled_projection_dim=TEXT_HIDDEN_SIZE + TEXT2_HIDDEN_SIZE,
        pos_embed_max_size=SD3_POS_EMBED_MAX,
        qk_norm="rms_norm",
        dual_attention_layers=(0,),
    ).eval()


def tiny_clip_l_with_projection() -> Any:
    """SD 3's CLIP-L: CLIPTextModelWithProjection (quick_gelu), the same width as `tiny_text_encoder`."""
    _torch()
    from transformers import CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(_text_config("quick_gelu", TEXT_HIDDEN_SIZE)).eval()


def tiny_clip_g() -> Any:
    """SD 3's CLIP-G (OpenCLIP bigG-like): SDXL's second encoder, whose projection is its own width."""
    return tiny_text_encoder_2()


def tiny_sd3_components() -> dict[str, Any]:
    """diffusers StableDiffusion3Pipeline components with tiny random weights (SD 3.5 layout)."""
    return {
        "transformer": tiny_sd3_transformer(),
        "vae": tiny_flow_vae("sd3"),
        "text_encoder": tiny_clip_l_with_projection(),
        "tokenizer": tiny_tokenizer(),
        "text_encoder_2": tiny_clip_g(),
        "tokenizer_2": tiny_tokenizer(pad_token="!"),
        "text_encoder_3": tiny_t5(),
        "tokenizer_3": tiny_t5_tokenizer(),
        "scheduler": _flow_scheduler("sd3"),
    }
