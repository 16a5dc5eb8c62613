"""One tiny FLUX.1-dev pipeline (fp32, CPU) and its transformer's weights in the layouts users download."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import flow_files, tiny_flow

PROMPT = "a photo of a red house"


@pytest.fixture(scope="session")
def flux_components() -> dict[str, Any]:
    return tiny_flow.tiny_flux_components()


@pytest.fixture(scope="session")
def flux_bfl(flux_components) -> dict[str, Any]:
    """The reference transformer's tensors in Black Forest Labs' layout (as `flux1-dev.safetensors`)."""
    return flow_files.flux_to_bfl(flux_components["transformer"])


@pytest.fixture(scope="session")
def flux_config(flux_components) -> dict[str, Any]:
    return dict(flux_components["transformer"].config)


@pytest.fixture(scope="session")
def flux_image(flux_components):
    """What the reference (fp32) transformer draws."""
    return image_with(flux_components, flux_components["transformer"])


def image_with(components: dict[str, Any], transformer: Any, **pipe_changes: Any) -> Any:
    """The pipeline's image (float array in [0, 1]) with `transformer` swapped in, seed 0, 3 steps."""
    import torch
    from diffusers import FluxPipeline

    pipe = FluxPipeline(**{**components, "transformer": transformer, **pipe_changes})
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator("cpu").manual_seed(0)
    out = pipe(
        PROMPT, height=64, width=64, num_inference_steps=3, max_sequence_length=32, generator=generator,
        output_type="np", guidance_scale=3.5,
    )  # fmt: skip
    return out.images[0]


def psnr(a: Any, b: Any) -> float:
    """Peak signal-to-noise ratio of two [0, 1] images in dB (inf when equal)."""
    import numpy as np

    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def parameter_bytes(module: Any) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
