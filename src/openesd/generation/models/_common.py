"""What the SD and the FLUX.1/SD 3 loaders share: the loaded model, the shipped family settings, reading files."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from openesd.errors import ModelError
from openesd.generation.models import _detect

CONFIGS = Path(__file__).parent / "_configs" / "families.json"
SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


@dataclass
class LoadedModel:
    """A ready pipeline and what it is (family drives the pipeline classes and the infotext)."""

    pipe: Any
    family: str  # sd1 | sd2 | sdxl | sdxl_refiner | flux | sd3
    inpainting: bool
    path: Path
    own_vae: Any = None  # the checkpoint's VAE, put back when a job no longer asks for another one
    # flux/sd3: the text encoders and VAE the file itself holds (None: each job must bring that part).
    own_parts: dict[str, Any] = field(default_factory=dict)
    variant: str = ""  # "FLUX.1 dev", "SD 3.5 Large", ... (for messages and infotext)

    def __post_init__(self) -> None:
        if self.own_vae is None:
            self.own_vae = self.pipe.vae

    def parameter_bytes(self) -> int:
        total = 0
        for module in self.pipe.components.values():
            if hasattr(module, "parameters"):
                total += sum(p.numel() * p.element_size() for p in module.parameters())
        return total


@lru_cache(maxsize=1)
def families() -> dict[str, Any]:
    return json.loads(CONFIGS.read_text())


def config_cache_dir() -> Path:
    """Where detected config folders go; `OPENESD_GENERATION_CACHE` overrides the temp directory."""
    root = os.environ.get("OPENESD_GENERATION_CACHE") or os.path.join(tempfile.gettempdir(), "openesd-generation")
    return Path(root) / "configs"


def read_state_dict(path: Path) -> dict[str, Any]:
    """Tensors of a `.safetensors` file, or of a pickle file through torch's weights-only loader."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path.name!r} not found")
    suffix = path.suffix.lower()
    if suffix in SAFE_SUFFIXES:
        return _read_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        from openesd.modeltools.merge import load_weights_only

        return load_weights_only(path)
    valid = ", ".join(SAFE_SUFFIXES + PICKLE_SUFFIXES)
    raise ModelError(f"model file {path.name!r} has an unknown format {suffix!r}; valid: {valid}")


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"model file {path.name!r} is not a readable safetensors file: {exc}") from exc


def shapes_of(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def shapes_of_file(path: Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a model file: from the header alone for `.safetensors`, else by loading it (weights only)."""
    path = Path(path)
    if path.suffix.lower() not in SAFE_SUFFIXES or not path.is_file():
        return shapes_of(read_state_dict(path))
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"model file {path.name!r} is not a readable safetensors file: {exc}") from exc


def pipeline_class(family: str) -> Any:
    import diffusers

    return getattr(diffusers, families()[family]["pipeline"])


def place(pipe: Any, device: Any, dtype: Any, vae_dtype: Any) -> None:
    if str(device) != "cpu":  # loading puts weights on the CPU, in their final dtype already
        pipe.to(device)
    if vae_dtype is not None and vae_dtype != dtype:
        pipe.vae.to(dtype=vae_dtype)
    pipe.set_progress_bar_config(disable=True)


def vae_from_ldm(state: dict[str, Any], family: str, dtype: Any) -> Any:
    """AutoencoderKL from LDM VAE keys with no prefix (`encoder.down.0...`), the family's scale and shift."""
    from diffusers import AutoencoderKL

    config = _detect.vae_config(shapes_of(state), "")
    prefixed = {_detect.VAE + k: v for k, v in state.items()}
    arch = _detect.Architecture(family=family, inpainting=False, configs={"vae": config})
    folder = _vae_folder(arch)
    return AutoencoderKL.from_single_file(
        prefixed, config=str(folder), subfolder="vae", local_files_only=True, torch_dtype=dtype
    )


def _vae_folder(arch: _detect.Architecture) -> Path:
    family = families()[arch.family]
    cfg = {**family["vae"], **arch.configs["vae"]}
    blob = json.dumps(cfg, sort_keys=True).encode()
    folder = config_cache_dir() / f"vae-{hashlib.sha256(blob).hexdigest()[:16]}"
    if not (folder / "vae" / "config.json").is_file():
        write_json(folder / "vae" / "config.json", cfg)
    return folder


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
