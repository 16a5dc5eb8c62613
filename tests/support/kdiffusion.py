"""k-diffusion's `sampling` module (the sampler library the WebUI calls), as an independent reference.

The PyPI package's `__init__` imports its training and evaluation code (wandb, clean-fid, CLIP,
kornia, ...), none of which the samplers need, so the test set-up installs it without its
dependencies (Makefile) and this module loads `k_diffusion.sampling` and `k_diffusion.utils`
alone: a bare package object is registered under `k_diffusion` and its two modules are imported
from the installed files. Only what `sampling.py` itself imports is needed: scipy, torchdiffeq,
torchsde and tqdm.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any


def sampling() -> Any:
    """The `k_diffusion.sampling` module of k-diffusion 0.1.1.post1 (the WebUI 1.10's samplers)."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("k-diffusion is not installed: run `make install` (it installs k-diffusion --no-deps)")
    package = types.ModuleType("k_diffusion")
    package.__path__ = [str(Path(p)) for p in spec.submodule_search_locations]
    sys.modules.setdefault("k_diffusion", package)
    return importlib.import_module("k_diffusion.sampling")
