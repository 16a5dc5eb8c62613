"""IP-Adapter through ControlNet units (sd-webui-controlnet's `ip-adapter_clip_*` modules), on diffusers' path.

The unit's `model` names the IP-Adapter file among `models["ControlNet"]` (ip-adapter_sd15.safetensors,
ip-adapter-plus_sdxl_vit-h.bin, ...); its module names the CLIP image encoder, uploaded as a
`ControlNet-annotator` file under the extension's name (clip_h.pth, clip_g.pth). The adapter's
attention processors go into the checkpoint's UNet for this job only (`release` takes them out);
the image embeds reach the UNet per CFG half through the WebUI's CFG denoiser (`ConditionedUNet.extras`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openesd.errors import ModelError, UnsupportedFeature
from openesd.generation.adapters import _image_encoder as encoders

# module -> the image encoder file it reads (the extension's names, and their older aliases)
MODULES = {
    "ip-adapter_clip_sd15": "clip_h",
    "ip-adapter_clip_h": "clip_h",
    "ip-adapter_clip_sdxl_plus_vith": "clip_h",
    "ip-adapter_clip_sdxl": "clip_g",
    "ip-adapter_clip_g": "clip_g",
    "ip-adapter-auto": "",  # chosen from the model file's name, as the extension does
}
REFUSED = {
    "ip-adapter_face_id": "needs insightface's face embedding (antelopev2/buffalo_l), which OpenESD does not run",
    "ip-adapter_face_id_plus": "needs insightface's face embedding (antelopev2/buffalo_l), which OpenESD does not run",
    "ip-adapter_pulid": "needs insightface and the EVA-CLIP encoder, which OpenESD does not run",
}
_SAVED = "_openesd_ip_processors"  # the UNet's own attention processors while an IP-Adapter is in
_LOADED = "_openesd_ip_files"


def handles(module: str) -> bool:
    return module.startswith("ip-adapter")


@dataclass
class ImagePrompt:
    """One unit: its image embeds (cond, uncond), weight and guidance range."""

    cond: Any
    uncond: Any
    weight: float
    start: float
    end: float


class ImagePrompts:
    """The job's IP-Adapter units as a `ConditionedUNet` extra: per call, each unit's scale (0 outside its
    guidance range) goes to every IP-Adapter processor, and its embeds to the UNet per CFG half."""

    keep_in_hires = True  # image embeds do not depend on the image size

    def __init__(self, unet: Any, prompts: list[ImagePrompt]) -> None:
        self.unet, self.prompts = unet, prompts
        self.processors = [p for p in unet.attn_processors.values() if hasattr(p, "to_k_ip")]

    def inputs(self, progress: float, which: int, batch: int) -> dict[str, Any]:
        # The extension's rule: a unit is off when the sampling percent is below its start or above its end.
        scales = [p.weight if p.start <= progress <= p.end else 0.0 for p in self.prompts]
        for processor in self.processors:
            processor.scale = scales
        device, dtype = self.unet.device, self.unet.dtype
        embeds = []
        for prompt in self.prompts:
            value = (prompt.cond if which == 1 else prompt.uncond).to(device, dtype)
            embeds.append(value.expand(batch, *value.shape[1:]))
        return {"added_cond_kwargs": {"image_embeds": embeds}}


def prepare(units: list[tuple[int, dict[str, Any], Any]], models: Any, unet: Any) -> ImagePrompts:
    """`units`: (index, unit, RGB array). Loads the adapters into `unet` and encodes each unit's image."""
    from openesd.generation.adapters._units import number as _number
    from openesd.generation.adapters._units import resolve_model as _resolve_model

    states, prompts = [], []
    for index, unit, rgb in units:
        module = str(unit.get("module")).strip().lower()
        path = _resolve_model(unit.get("model"), index, models)
        state = read_ip_adapter(path)
        _check_fits(state, path, unet)
        stem = MODULES[module] or _auto_encoder(path)
        encoder = encoders.load_encoder(encoders.find_encoder(models, stem, module), unet.device, unet.dtype)
        hidden = _uses_hidden_states(state)
        _check_encoder(state, encoder, path, stem, hidden)
        cond, uncond = encoders.embeds(encoder, rgb, hidden)
        start, end = _number(unit, "guidance_start", 0.0, index), _number(unit, "guidance_end", 1.0, index)
        weight = _number(unit, "weight", 1.0, index)
        prompts.append(ImagePrompt(cond[:, None], uncond[:, None], weight, start, end))
        states.append((path, state))
    install(unet, states)
    return ImagePrompts(unet, prompts)


def check_module(module: str, index: int) -> None:
    if module in REFUSED:
        raise UnsupportedFeature(
            f"ControlNet unit {index} module {module!r} is not supported: it {REFUSED[module]}; "
            f"supported IP-Adapter modules: {', '.join(MODULES)}"
        )
    if module not in MODULES:
        raise UnsupportedFeature(
            f"ControlNet unit {index} module {module!r} is not supported; "
            f"supported IP-Adapter modules: {', '.join(MODULES)}"
        )


def read_ip_adapter(path: Path) -> dict[str, dict[str, Any]]:
    """{"image_proj": ..., "ip_adapter": ...} from the official .bin layout or its flat safetensors form."""
    from openesd.generation.models.loading import SAFE_SUFFIXES, read_state_dict

    if not path.is_file():
        raise ModelError(f"IP-Adapter file {path.name!r} not found")
    flat = read_state_dict(path) if path.suffix.lower() in SAFE_SUFFIXES else _nested_pickle(path)
    state: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        group, _, rest = key.partition(".")
        if group in state:
            state[group][rest] = value
    if not state["image_proj"] or "1.to_k_ip.weight" not in state["ip_adapter"]:
        raise ModelError(
            f"{path.name!r} is not an IP-Adapter (no image_proj.* and ip_adapter.1.to_k_ip.weight); "
            "an IP-Adapter unit's model must be an IP-Adapter file such as ip-adapter_sd15.safetensors"
        )
    if "perceiver_resampler.proj_in.weight" in state["image_proj"] or "faceid" in path.name.lower():
        raise UnsupportedFeature(
            f"IP-Adapter {path.name!r} is a FaceID adapter: it needs insightface's face embedding, "
            "which OpenESD does not run; use a CLIP IP-Adapter (ip-adapter_sd15, ip-adapter-plus_sd15, "
            "ip-adapter_xl, ...)"
        )
    return state


def _nested_pickle(path: Path) -> dict[str, Any]:
    """Tensors of a `.bin`/`.pth` through torch's weights-only loader, nested dicts flattened with dots."""
    import torch

    from openesd.modeltools.merge import load_pickled

    data = load_pickled(path, "IP-Adapter file")
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        elif isinstance(value, torch.Tensor):
            flat[prefix[:-1]] = value

    walk("", data)
    return flat


def _uses_hidden_states(state: dict[str, dict[str, Any]]) -> bool:
    """Plus (Resampler) and full-face (MLP) adapters read CLIP's penultimate hidden states; plain ones the
    projected embedding."""
    return "latents" in state["image_proj"] or "proj.3.weight" in state["image_proj"]


def _auto_encoder(path: Path) -> str:
    """ip-adapter-auto: SDXL adapters other than the ViT-H ones read clip_g, every other one clip_h."""
    name = path.name.lower()
    return "clip_g" if ("sdxl" in name or "_xl" in name) and "vit-h" not in name else "clip_h"


def _check_fits(state: dict[str, dict[str, Any]], path: Path, unet: Any) -> None:
    width = state["ip_adapter"]["1.to_k_ip.weight"].shape[1]
    expected = unet.config.cross_attention_dim
    if width != expected:
        raise ModelError(
            f"IP-Adapter {path.name!r} is made for {width}-wide text conditioning but this checkpoint's UNet "
            f"takes {expected} (an SD 1.5 adapter on SDXL or the reverse)"
        )


def _check_encoder(state: dict[str, dict[str, Any]], encoder: Any, path: Path, stem: str, hidden: bool) -> None:
    proj = state["image_proj"]
    if "latents" in proj:
        wanted = proj["proj_in.weight"].shape[1]
    elif "proj.3.weight" in proj:
        wanted = proj["proj.0.weight"].shape[1]
    else:
        wanted = proj["proj.weight"].shape[1]
    given = encoder.config.hidden_size if hidden else encoder.config.projection_dim
    if wanted != given:
        raise ModelError(
            f"IP-Adapter {path.name!r} expects {wanted}-wide image features but the image encoder {stem} gives "
            f"{given}; pick the module for its encoder (ip-adapter_clip_sd15 / _sdxl_plus_vith: clip_h, "
            "ip-adapter_clip_sdxl: clip_g)"
        )


def install(unet: Any, states: list[tuple[Path, dict[str, Any]]]) -> None:
    """These adapters (in unit order) into the UNet with diffusers' loader; the same files stay in place."""
    key = [(str(p.resolve()), p.stat().st_mtime_ns) for p, _ in states]
    if getattr(unet, _LOADED, None) == key:
        return
    release(unet)
    saved = dict(unet.attn_processors)
    unet._load_ip_adapter_weights([state for _, state in states])
    setattr(unet, _SAVED, saved)
    setattr(unet, _LOADED, key)


def release(unet: Any) -> None:
    """The UNet as it was before `install` (every job without IP-Adapter units calls it)."""
    saved = getattr(unet, _SAVED, None)
    if saved is None:
        return
    unet.set_attn_processor(saved)
    unet.encoder_hid_proj = None
    unet.config.encoder_hid_dim_type = None
    setattr(unet, _SAVED, None)
    setattr(unet, _LOADED, None)
