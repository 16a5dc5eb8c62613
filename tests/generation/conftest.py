"""Tiny checkpoints written once per session in the A1111 layout, and one shared Generator (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import tiny_models as tm


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def sd15_checkpoint(tiny_dir) -> Path:
    return tm.write_tiny_sd15_checkpoint(tiny_dir / "tiny-sd15.safetensors")


@pytest.fixture(scope="session")
def sd15_inpaint_checkpoint(tiny_dir) -> Path:
    return tm.write_tiny_sd15_inpaint_checkpoint(tiny_dir / "tiny-sd15-inpainting.safetensors")


@pytest.fixture(scope="session")
def sdxl_checkpoint(tiny_dir) -> Path:
    return tm.write_tiny_sdxl_checkpoint(tiny_dir / "tiny-sdxl.safetensors")


@pytest.fixture(scope="session")
def sdxl_refiner_checkpoint(tiny_dir) -> Path:
    return tm.write_tiny_sdxl_refiner_checkpoint(tiny_dir / "tiny-sdxl-refiner.safetensors")


@pytest.fixture(scope="session")
def vae_file(tiny_dir) -> Path:
    return tm.write_tiny_vae(tiny_dir / "tiny-vae.safetensors")


@pytest.fixture(scope="session")
def generator(tmp_path_factory):
    import os

    os.environ.setdefault("OPENESD_GENERATION_CACHE", str(tmp_path_factory.mktemp("generation-cache")))
    from openesd.generation import Generator

    return Generator(device="cpu")


@pytest.fixture
def sd15_models(sd15_checkpoint) -> dict[str, list[Path]]:
    return {"Stable-diffusion": [sd15_checkpoint]}
