"""Background removal for the rembg extension's `POST /rembg` body, from uploaded ONNX models."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openesd.errors import ModelError, PayloadError
from openesd.generation.images import decode_image, encode_png
from openesd.generation.types import GenerationResult, ModelFiles

# rembg session classes whose pre- and post-processing fit the model a file's stem names. Any
# other uploaded file is run as a U²-Net (320×320, ImageNet normalisation), like rembg's
# `u2net_custom`. Sessions that call out to a service or need extra files are left out.
KNOWN_MODELS = (
    "u2net",
    "u2netp",
    "u2net_human_seg",
    "u2net_cloth_seg",
    "silueta",
    "isnet-general-use",
    "isnet-anime",
    "birefnet-general",
    "birefnet-general-lite",
    "birefnet-portrait",
    "birefnet-dis",
    "birefnet-hrsod",
    "birefnet-cod",
    "birefnet-massive",
    "bria-rmbg",
)
MAX_CACHED_SESSIONS = 4


@dataclass(frozen=True)
class RembgOptions:
    """The rembg extension's body, validated, with the extension's defaults."""

    model: str
    return_mask: bool = False
    alpha_matting: bool = False
    foreground_threshold: int = 240
    background_threshold: int = 10
    erode_size: int = 10


def run_rembg(payload: dict, models: ModelFiles, sessions: RembgSessions | None = None) -> GenerationResult:
    """One PNG: the input with its background made transparent (RGBA), or the mask itself."""
    # 1. Validate the body and find the model before decoding or loading anything.
    options = parse_options(payload)
    path = resolve_model(options.model, models)
    image = decode_image(payload.get("input_image") or "")
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")

    # 2. Predict the mask and cut out with rembg's own post-processing and alpha matting.
    from rembg import remove

    output = remove(
        image,
        session=(sessions or default_sessions()).get(path),
        only_mask=options.return_mask,
        alpha_matting=options.alpha_matting,
        alpha_matting_foreground_threshold=options.foreground_threshold,
        alpha_matting_background_threshold=options.background_threshold,
        alpha_matting_erode_size=options.erode_size,
    )
    return GenerationResult(images=[encode_png(output)], parameters=None, info=None, html_info=None)


def warm_alpha_matting() -> None:
    """Run rembg's alpha matting once on a tiny image: pymatting compiles its numba code on first use (a
    minute on a fresh install), which a worker does at start rather than inside a user's first job."""
    import numpy as np
    from PIL import Image
    from rembg.bg import alpha_matting_cutout

    size = 16
    image = Image.fromarray(np.full((size, size, 3), 128, dtype=np.uint8))
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[:, size // 2 :] = 255  # a foreground, a background and an unknown band between them
    alpha_matting_cutout(image, Image.fromarray(mask), 240, 10, 2)


def parse_options(payload: dict) -> RembgOptions:
    model = payload.get("model", "u2net")
    if not isinstance(model, str):
        raise PayloadError(f"model must be a rembg model name, got {model!r}")
    return RembgOptions(
        model=model,
        return_mask=bool(payload.get("return_mask", False)),
        alpha_matting=bool(payload.get("alpha_matting", False)),
        foreground_threshold=_byte(payload, "alpha_matting_foreground_threshold", 240),
        background_threshold=_byte(payload, "alpha_matting_background_threshold", 10),
        erode_size=_erode_size(payload),
    )


def resolve_model(name: str, models: ModelFiles) -> Path:
    """The uploaded `.onnx` file that `name` means (stem or file name, then case-insensitive)."""
    files = model_files(models)
    for same in (str.__eq__, lambda a, b: a.lower() == b.lower()):
        found = [path for path in files if same(path.stem, name) or same(path.name, name)]
        if found:
            return found[0]
    available = ", ".join(path.stem for path in files) or "none (upload one as type rembg)"
    raise ModelError(f"rembg model '{name}' is not available; choose one of: {available}")


def model_files(models: ModelFiles) -> list[Path]:
    return [Path(path) for path in models.get("rembg", []) if Path(path).suffix.lower() == ".onnx"]


class RembgSessions:
    """onnxruntime sessions for uploaded rembg models, reused across jobs (least recently used evicted)."""

    def __init__(self, max_sessions: int = MAX_CACHED_SESSIONS):
        self._max = max_sessions
        self._sessions: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> Any:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = _new_session(path)
            self._sessions.move_to_end(key)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
            return self._sessions[key]


@functools.cache
def default_sessions() -> RembgSessions:
    """The process-wide session cache (a worker serves many jobs with the same models)."""
    return RembgSessions()


def _new_session(path: Path) -> Any:
    """A rembg session on the uploaded file itself.

    rembg's own constructors resolve models under `~/.rembg` and download missing ones; the
    subclass returns the uploaded path instead, so nothing is ever fetched or looked up there.
    """
    import onnxruntime as ort
    from rembg.sessions import sessions
    from rembg.sessions.u2net_custom import U2netCustomSession

    base = sessions[path.stem] if path.stem in KNOWN_MODELS else U2netCustomSession
    uploaded = type(f"Uploaded{base.__name__}", (base,), {"download_models": classmethod(_uploaded_path)})
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return uploaded(path.stem, ort.SessionOptions(), model_path=str(path), providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        raise ModelError(f"rembg model file {path.name} cannot be loaded by onnxruntime: {exc}") from exc


def _uploaded_path(cls: type, *args: Any, **kwargs: Any) -> str:
    return kwargs["model_path"]


def _byte(payload: dict, key: str, default: int) -> int:
    value = _int(payload, key, default)
    if not 0 <= value <= 255:
        raise PayloadError(f"{key} must be between 0 and 255, got {value}")
    return value


def _erode_size(payload: dict) -> int:
    value = _int(payload, "alpha_matting_erode_size", 10)
    if value < 0:
        raise PayloadError(f"alpha_matting_erode_size must be 0 or more, got {value}")
    return value


def _int(payload: dict, key: str, default: int) -> int:
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise PayloadError(f"{key} must be a whole number, got {value!r}")
    return int(value)
