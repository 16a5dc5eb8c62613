"""Loaded checkpoints and VAEs kept between jobs, least recently used evicted first within a byte budget."""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any


def parameter_bytes(module: Any) -> int:
    """Bytes held by the parameters of a torch module or of every module in a pipeline."""
    modules = module.components.values() if hasattr(module, "components") else [module]
    total = 0
    for m in modules:
        if hasattr(m, "parameters"):
            total += sum(p.numel() * p.element_size() for p in m.parameters())
    return total


class ModelCache:
    """Path -> loaded object; keeps the most recently used entry even when it alone exceeds the budget."""

    def __init__(self, budget_bytes: int | None = None):
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times something was actually loaded (tests and metrics read it)
        self.hits = 0  # how many times a get found its object already loaded (metrics read it)
        # Hears each load begin (seconds None) and end (its duration): the worker reports them as cold-start phases.
        self.observer: Callable[[str, Path, float | None], None] | None = None

    def get(self, kind: str, path: Path, load: Callable[[], Any]) -> Any:
        """The cached object for (kind, path), loading it with `load()` on a miss."""
        key = (kind, str(Path(path).resolve()))
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key][0]
        observer = self.observer
        if observer is not None:
            observer(kind, Path(path), None)
        started = time.monotonic()
        value = load()
        self.loads += 1
        if observer is not None:
            observer(kind, Path(path), round(time.monotonic() - started, 3))
        with self._lock:
            self._entries[key] = (value, _size(value))
            self._evict(keep=key)
        return value

    def keys(self) -> list[tuple[str, str]]:
        return list(self._entries)

    def total_bytes(self) -> int:
        return sum(size for _, size in self._entries.values())

    def _evict(self, keep: tuple[str, str]) -> None:
        if self.budget_bytes is None:
            return
        evicted = False
        while self.total_bytes() > self.budget_bytes and len(self._entries) > 1:
            oldest = next(iter(self._entries))
            if oldest == keep:
                break
            del self._entries[oldest]
            evicted = True
        if evicted:
            _free_memory()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        _free_memory()


def _size(value: Any) -> int:
    pipe = getattr(value, "pipe", value)
    return parameter_bytes(pipe)


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # the cache itself never needs torch
        pass


def default_budget(device: str) -> int:
    """70% of the GPU's memory, or half of the machine's RAM on the CPU."""
    import os

    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory * 0.7)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.5)
    except (ValueError, OSError, AttributeError):
        return 8 << 30
