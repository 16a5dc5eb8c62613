"""Execution backends: `open_engine(url, settings, events)` picks the implementation from the URL."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from openesd.errors import ConfigurationError
from openesd.execution.base import EndpointSpec, Engine, JobSpec, MergeSpec, TrainingSpec
from openesd.execution.events import EngineConsumers
from openesd.settings import Settings


def _local(url: str, settings: Settings, events: EngineConsumers) -> Engine:
    from openesd.execution.local import LocalEngine

    return LocalEngine(settings, events)


def _ray(url: str, settings: Settings, events: EngineConsumers) -> Engine:
    from openesd.execution.ray import RayEngine

    return RayEngine(url, settings, events)


_REGISTRY: dict[str, Callable[[str, Settings, EngineConsumers], Engine]] = {"local": _local, "ray": _ray}


def open_engine(url: str, settings: Settings, events: EngineConsumers) -> Engine:
    """The engine named by `url`: `local`, `ray` (this machine's Ray node, or a new local instance) or
    `ray://host:port` (a Ray cluster through Ray Client)."""
    scheme = urlparse(url).scheme or url
    if scheme not in _REGISTRY:
        raise ConfigurationError(f"unknown engine URL {url!r}; valid: {', '.join(_REGISTRY)}")
    return _REGISTRY[scheme](url, settings, events)


__all__ = ["EndpointSpec", "Engine", "EngineConsumers", "JobSpec", "MergeSpec", "TrainingSpec", "open_engine"]
