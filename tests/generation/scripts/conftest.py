"""A second tiny SD 1.5 checkpoint (the first one's weights, perturbed) for the checkpoint axis."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sd15_other_checkpoint(tiny_dir) -> Path:
    import torch

    from openesd.modeltools.export import save_single_file
    from tests.support import tiny_models as tm

    components = tm.tiny_sd15_components()
    torch.manual_seed(7)
    with torch.no_grad():
        for p in components["unet"].parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return save_single_file(components, tiny_dir / "tiny-sd15-other.safetensors")
