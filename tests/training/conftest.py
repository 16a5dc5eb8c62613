"""Tiny checkpoints (the generation fixtures' A1111 files) and small kohya dataset folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import tiny_models as tm


@pytest.fixture(scope="session", autouse=True)
def _config_cache(tmp_path_factory):
    import os

    os.environ.setdefault("OPENESD_GENERATION_CACHE", str(tmp_path_factory.mktemp("generation-cache")))


@pytest.fixture(scope="session")
def sd15_checkpoint(tmp_path_factory) -> Path:
    return tm.write_tiny_sd15_checkpoint(tmp_path_factory.mktemp("models") / "tiny-sd15.safetensors")


@pytest.fixture(scope="session")
def sdxl_checkpoint(tmp_path_factory) -> Path:
    return tm.write_tiny_sdxl_checkpoint(tmp_path_factory.mktemp("models") / "tiny-sdxl.safetensors")


def write_image(path: Path, size: tuple[int, int], seed: int) -> Path:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def make_dataset(root: Path, folders: dict[str, list[tuple[str, tuple[int, int], str | None]]]) -> Path:
    """folders: {"2_cat": [(stem, (w, h), caption or None), ...]} -> PNG files plus .txt captions."""
    for index, (folder, images) in enumerate(folders.items()):
        for number, (stem, size, caption) in enumerate(images):
            write_image(root / folder / f"{stem}.png", size, seed=index * 100 + number)
            if caption is not None:
                (root / folder / f"{stem}.txt").write_text(caption)
    return root


@pytest.fixture
def small_dataset(tmp_path) -> Path:
    return make_dataset(
        tmp_path / "dataset",
        {
            "2_cat": [("a", (64, 64), "a photo of sks cat, sitting"), ("b", (64, 64), "sks cat, on a sofa")],
        },
    )
