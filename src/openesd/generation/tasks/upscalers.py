"""Upscalers by WebUI name: PIL ones (`None`, `Lanczos`, `Nearest`) and uploaded model files (spandrel)."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from openesd.errors import ModelError, PayloadError
from openesd.generation.tasks.upscaler_names import PIL_UPSCALERS, WEBUI_ALIASES
from openesd.generation.types import ModelFiles

if TYPE_CHECKING:
    import torch

MODEL_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")

# Like A1111's ESRGAN code: at most three model passes, then Lanczos to the exact size.
MAX_MODEL_PASSES = 3
# A1111's defaults for `ESRGAN_tile` / `ESRGAN_tile_overlap`.
DEFAULT_TILE_SIZE = 192
DEFAULT_TILE_OVERLAP = 8


def upscale(
    image: Image.Image,
    upscaler_name: str,
    scale: float,
    models: ModelFiles,
    upscalers: Upscalers | None = None,
) -> Image.Image:
    """`image` enlarged `scale` times (sizes truncated like the WebUI) by the named upscaler."""
    return (upscalers or default_upscalers()).upscale(image, upscaler_name, scale, models)


def upscale_to(
    image: Image.Image,
    upscaler_name: str,
    width: int,
    height: int,
    models: ModelFiles,
    upscalers: Upscalers | None = None,
) -> Image.Image:
    """`image` resized to exactly `width`×`height` by the named upscaler (no aspect fitting)."""
    return (upscalers or default_upscalers()).upscale_to(image, upscaler_name, width, height, models)


def upscaler_names(models: ModelFiles) -> list[str]:
    """Every name `upscale` accepts for these model files, PIL ones first."""
    return [*PIL_UPSCALERS, *(path.stem for path in _model_files(models))]


@functools.cache
def default_upscalers() -> Upscalers:
    """The process-wide upscaler model cache, for callers that do not hold their own."""
    return Upscalers()


class Upscalers:
    """Upscaler models loaded on one device, reused across jobs (least recently used evicted)."""

    def __init__(
        self,
        device: Any = "auto",
        tile_size: int = DEFAULT_TILE_SIZE,
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
        max_models: int = 4,
    ):
        if tile_size <= 0 or tile_overlap < 0:
            raise ValueError(f"tile_size must be > 0 and tile_overlap >= 0, got {tile_size}, {tile_overlap}")
        self._device_name = device
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self._max_models = max_models
        self._loaded: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def upscale(self, image: Image.Image, name: str, scale: float, models: ModelFiles) -> Image.Image:
        if not scale > 0:
            raise PayloadError(f"upscale factor must be greater than 0, got {scale}")
        width, height = int(image.width * scale), int(image.height * scale)
        return self.upscale_to(image, name, max(width, 1), max(height, 1), models)

    def upscale_to(self, image: Image.Image, name: str, width: int, height: int, models: ModelFiles) -> Image.Image:
        if width <= 0 or height <= 0:
            raise PayloadError(f"upscale target size must be positive, got {width}x{height}")
        choice = resolve_upscaler(name, models)
        if choice == "Nearest":
            return image.resize((width, height), resample=Image.Resampling.NEAREST)
        if isinstance(choice, str):
            # `None` resizes with Lanczos, as the WebUI's "None" upscaler does.
            return _lanczos(image, width, height)
        return self._upscale_with_model(image, choice, width, height)

    def _upscale_with_model(self, image: Image.Image, path: Path, width: int, height: int) -> Image.Image:
        model = self._model(path)
        image = image.convert("RGB")
        for done in range(MAX_MODEL_PASSES):
            reached = image.width >= width and image.height >= height
            # A 1× model (restoration) still runs once when the size is already right.
            if reached and (done > 0 or image.size != (width, height)):
                break
            before = image.size
            image = self._run_model(model, image)
            if image.size == before:
                break
        return _lanczos(image, width, height)

    def _run_model(self, model: Any, image: Image.Image) -> Image.Image:
        import numpy as np
        import torch

        array = np.asarray(image, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)
        tensor = tensor.to(device=model.device, dtype=model.dtype)
        with torch.inference_mode():
            output = self._tiled(model, tensor)
        output = output.squeeze(0).float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        return Image.fromarray((output * 255.0).round().astype(np.uint8), mode="RGB")

    def _tiled(self, model: Any, tensor: torch.Tensor) -> torch.Tensor:
        """The model's output, computed tile by tile so large images fit in device memory.

        Each tile is run with `tile_overlap` pixels of context on every side and only its own
        region is kept, so the seams see the same neighbourhood as the interior.
        """
        from spandrel import ModelTiling

        _, _, height, width = tensor.shape
        size, overlap, scale = self.tile_size, self.tile_overlap, model.scale
        if model.tiling == ModelTiling.INTERNAL or (height <= size and width <= size):
            return model(tensor)
        output = tensor.new_zeros((1, model.output_channels, height * scale, width * scale))
        for top in range(0, height, size):
            for left in range(0, width, size):
                bottom, right = min(top + size, height), min(left + size, width)
                y0, x0 = max(top - overlap, 0), max(left - overlap, 0)
                y1, x1 = min(bottom + overlap, height), min(right + overlap, width)
                piece = model(tensor[:, :, y0:y1, x0:x1])
                oy, ox = (top - y0) * scale, (left - x0) * scale
                output[:, :, top * scale : bottom * scale, left * scale : right * scale] = piece[
                    :, :, oy : oy + (bottom - top) * scale, ox : ox + (right - left) * scale
                ]
        return output

    def _model(self, path: Path) -> Any:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            model = _load_model(path, self._device())
            self._loaded[key] = model
            while len(self._loaded) > self._max_models:
                self._loaded.popitem(last=False)
            return model

    def _device(self) -> str:
        if str(self._device_name) != "auto":
            return str(self._device_name)  # "cpu", "cuda", "cuda:1" or a torch.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_upscaler(name: str, models: ModelFiles) -> str | Path:
    """The PIL upscaler name or the model file that `name` means; unknown names list the choices."""
    if name in PIL_UPSCALERS:
        return name
    files = _model_files(models)
    wanted = WEBUI_ALIASES.get(name, name)
    for matches in (
        lambda p: p.name == wanted or p.stem == wanted,
        lambda p: p.name.lower() == wanted.lower() or p.stem.lower() == wanted.lower(),
    ):
        found = [path for path in files if matches(path)]
        if found:
            return found[0]
    raise ModelError(
        f"Upscaler '{name}' is not available; choose one of: {', '.join(upscaler_names(models))} "
        "(model upscalers are the ESRGAN files named in the job's models)"
    )


def _model_files(models: ModelFiles) -> list[Path]:
    return [Path(p) for p in models.get("ESRGAN", []) if Path(p).suffix.lower() in MODEL_SUFFIXES]


def _lanczos(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), resample=Image.Resampling.LANCZOS)


def _load_model(path: Path, device: str) -> Any:
    """A spandrel image-to-image model from an uploaded file, read without unpickling code."""
    import torch
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError, canonicalize_state_dict

    state_dict = canonicalize_state_dict(_read_state_dict(path))
    try:
        model = ModelLoader().load_from_state_dict(state_dict)
    except UnsupportedModelError as exc:
        message = f"Upscaler file {path.name} is not a model architecture spandrel knows"
        raise ModelError(message) from exc
    except (KeyError, IndexError, ValueError, RuntimeError) as exc:
        # A known architecture's keys with the wrong shapes or missing pieces: a damaged file.
        raise ModelError(f"Upscaler file {path.name} cannot be loaded: {exc}") from exc
    if not isinstance(model, ImageModelDescriptor) or model.purpose not in ("SR", "Restoration"):
        purpose = getattr(model, "purpose", type(model).__name__)
        raise ModelError(f"Upscaler file {path.name} is a {purpose} model, not an upscaler")
    if model.input_channels != 3 or model.output_channels != 3:
        raise ModelError(
            f"Upscaler file {path.name} takes {model.input_channels} channels in and "
            f"{model.output_channels} out; only RGB (3 → 3) models are supported"
        )
    model.to(torch.device(device)).eval()
    if device.startswith("cuda") and model.supports_half:
        model.half()
    return model


def _read_state_dict(path: Path) -> dict:
    import torch

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        # weights_only: an uploaded pickle must never run code (docs/decisions.md, Models).
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for a bad or unsafe file
        raise ModelError(
            f"Upscaler file {path.name} cannot be read as plain tensors (weights-only loader): {exc}"
        ) from exc
