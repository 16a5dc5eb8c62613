"""Live previews on FLUX.1 / SD 3.5: what one preview costs against one sampler step, in the same run.

A step is one transformer call of the job (FlowTransformer, batch 1, CFG off); a preview is the fitted
latent->RGB map at latent size plus its JPEG, as a job sends it; the fit (once per VAE) and a full VAE
decode at the image size (the alternative we did not pick) are reported beside them.

    python bench/flow_previews.py --family flux            # the tests' tiny model on the CPU
    python bench/flow_previews.py --family flux --full --size 1024 --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "src")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", choices=("flux", "sd3"), default="flux")
    parser.add_argument("--full", action="store_true", help="the real architecture with random weights (GPU)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args()


def _seconds(work: Any, repeats: int, device: str) -> float:
    import torch

    work()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    import torch

    from bench._flow import build_pipeline
    from openesd.generation import previews
    from openesd.generation.sampling import flow_models as models

    args = parse_args()
    dtype = getattr(torch, args.dtype)
    pipe = build_pipeline(args.family, args.full, args.device, dtype)
    prompts = models.encode(args.family, pipe, "a photo of a red house", "", False)
    velocity = models.FlowTransformer(args.family, pipe, models.PromptSchedule([(0, prompts)]), 1.0, None)
    if models.has_guidance(pipe):
        velocity.distilled = 3.5
    side = args.size // pipe.vae_scale_factor
    latent = torch.randn(1, 16, side, side, device=args.device)
    with torch.no_grad():
        step = _seconds(lambda: velocity(latent, 0.5, 0), args.repeats, args.device)
    started = time.perf_counter()
    fitted = previews.fit_linear_preview(pipe.vae)
    fit = time.perf_counter() - started
    preview = _seconds(
        lambda: previews.encode_jpeg(previews.linear_preview(latent[0], fitted)), args.repeats, args.device
    )
    decode = _seconds(lambda: models.decode(pipe, latent), args.repeats, args.device)
    print(f"{args.family} {'full' if args.full else 'tiny'} {args.size}px on {args.device} ({args.dtype})")
    print(f"step {step * 1000:.2f} ms, preview {preview * 1000:.2f} ms = {preview / step:.3f} of a step")
    print(f"fit (once per VAE) {fit * 1000:.0f} ms; full VAE decode {decode * 1000:.2f} ms = {decode / step:.2f} steps")


if __name__ == "__main__":
    main()
