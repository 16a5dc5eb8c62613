"""Benchmark: our Generator vs a plain diffusers pipeline, same full-size architecture and settings.

The model is SD 1.5's (or, with --sdxl, SDXL base's) real architecture with random weights, built in
memory and saved as an A1111 single file in a temp dir, so our loader is part of what runs. Both sides
use the same sampler (--sampler, default `Euler a`), size, steps, seed and precision: ours runs the
WebUI's sampler (generation/sampling: k-diffusion's algorithms driven from the pipeline), the plain
side diffusers' own scheduler of that name. Prints seconds per image at batch 1, images per second
at the best batch of --batches, for both, and our/diffusers ratios (issue 21's goal: <= 1.05x).

    python bench/generate.py --width 256 --height 256 --steps 4 --batches 1,2   # CPU
    python bench/generate.py --steps 25 --batches 1,2,4,8                      # GPU, 512x512
    python bench/generate.py --sampler "DPM++ 2M Karras" --steps 25 --batches 1

--fastpath runs our Generator alone, once plain and once per fast-path setting (each on its own, then
`all`), and prints each setting's speed-up over the plain run of the same process (> 1: faster):

    python bench/generate.py --fastpath --tiny --width 64 --height 64 --steps 4 --batches 1   # CPU
    python bench/generate.py --fastpath --steps 25 --batches 1,8                             # GPU, SD 1.5
    python bench/generate.py --fastpath --sdxl --steps 25 --batches 1,4                      # GPU, SDXL

--family flux|sd35 compares our worker with the plain FluxPipeline / StableDiffusion3Pipeline on the same
weights (bench/_flow.py): the tiny models by default, --full for the real architectures, --model for a file:

    python bench/generate.py --family flux --steps 4 --batches 1,2                      # CPU, tiny
    python bench/generate.py --family flux --full --steps 28 --batches 1                # GPU, FLUX.1-dev 1024
    python bench/generate.py --family sd35 --full --steps 28 --batches 1                # GPU, SD 3.5 Large
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sdxl", action="store_true", help="SDXL base architecture instead of SD 1.5")
    parser.add_argument("--width", type=int, default=None, help="default 512 (SDXL: 1024)")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batches", default="1,2,4", help="batch sizes to try, comma-separated")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per setting (best is kept)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sampler", default="Euler a", choices=sorted(DIFFUSERS_SCHEDULERS))
    parser.add_argument("--fastpath", action="store_true", help="each fast-path setting against the plain run")
    parser.add_argument("--settings", default=None, help=f"with --fastpath, a subset of: {', '.join(FASTPATH)}")
    parser.add_argument("--compile-mode", default="max-autotune-no-cudagraphs", help="torch.compile mode")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny random model (CPU figures)")
    parser.add_argument("--family", choices=("sd", "flux", "sd35"), default="sd", help="flux/sd35: bench/_flow.py")
    parser.add_argument("--full", action="store_true", help="flux/sd35: full-size architecture, random weights")
    parser.add_argument("--model", default=None, help="flux/sd35: a checkpoint file, loaded by the worker")
    return parser.parse_args()


# Each fast-path variant: FastPath fields over the plain run's (see generation/models/fastpath.py).
CPU_SKIPS = ("compile", "all")
FASTPATH: dict[str, dict] = {
    "bf16": {"cuda_dtype": "bf16", "cpu_dtype": "bf16"},
    "channels_last": {"channels_last": True},
    "classic_attention": {"attention": "classic"},  # the plain run is SDPA: ratio < 1 is SDPA's gain
    "fuse_qkv": {"fuse_qkv": True},
    "vae_tiling": {"vae_tiling_pixels": 1},  # tiled+sliced decode at every size: its cost
    "compile": {"compile_mode": None},  # mode from --compile-mode
    "all": {"channels_last": True, "fuse_qkv": True, "compile_mode": None},
}


# The diffusers scheduler each benchmarked WebUI sampler is compared with (class, config options).
DIFFUSERS_SCHEDULERS: dict[str, tuple[str, dict]] = {
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ SDE Karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
}


def build_checkpoint(sdxl: bool, folder: Path, half: bool) -> tuple[dict, Path]:
    """Random full-size components, and the same weights as an A1111 `.safetensors` file."""
    from openesd.modeltools.export import pipeline_to_ldm
    from safetensors.torch import save_file
    from tests.support import tiny_models as tm

    components = tm.full_sdxl_components() if sdxl else tm.full_sd15_components()
    state = pipeline_to_ldm(components)
    if half:  # what users upload: fp16 "pruned" files
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = folder / ("bench-sdxl.safetensors" if sdxl else "bench-sd15.safetensors")
    save_file(state, str(path))
    del state
    gc.collect()
    return components, path


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(sides: dict, batches: list[int], repeats: int) -> dict[str, dict]:
    """Best time per (side, batch), running the sides alternately so that load on a shared machine
    hits both alike. One untimed warm-up per setting first."""
    best: dict[str, dict[int, float]] = {name: {} for name in sides}
    for batch in batches:
        runs = {name: make_run(batch) for name, make_run in sides.items()}
        for run in runs.values():
            run()
        for _ in range(repeats):
            for name, run in runs.items():
                elapsed = timed(run)
                best[name][batch] = min(best[name].get(batch, elapsed), elapsed)
    results = {}
    for name, times in best.items():
        throughput = {b: b / t for b, t in times.items()}
        top = max(throughput, key=throughput.get)
        per_image = times.get(1, float("nan"))
        print(
            f"{name:10s} batch 1: {per_image:8.3f} s/image | best batch {top}: {throughput[top]:7.3f} images/s "
            f"| all: " + ", ".join(f"{b}: {v:.3f}" for b, v in throughput.items()),
            flush=True,
        )
        results[name] = {"per_image": per_image, "throughput": throughput[top]}
    return results


def ours(path: Path, args, size: tuple[int, int]):
    from openesd.generation import GenerationRequest, Generator

    generator = Generator(device=args.device)
    models = {"Stable-diffusion": [path]}
    start = time.perf_counter()
    generator.run(GenerationRequest("txt2img", _payload(args, size, 1, steps=1), models))
    print(f"our loader + first 1-step job: {time.perf_counter() - start:.1f} s", flush=True)

    def make_run(batch: int):
        payload = _payload(args, size, batch)
        return lambda: generator.run(GenerationRequest("txt2img", payload, models))

    return generator, make_run


def _payload(args, size: tuple[int, int], batch: int, steps: int | None = None) -> dict:
    return {
        "prompt": "a photograph of an astronaut riding a horse",
        "negative_prompt": "",
        "seed": 1,
        "sampler_name": args.sampler,
        "steps": steps or args.steps,
        "cfg_scale": 7,
        "width": size[0],
        "height": size[1],
        "batch_size": batch,
    }


def plain_diffusers(components: dict, args, size: tuple[int, int], device: str, dtype):
    import diffusers
    import torch

    cls = diffusers.StableDiffusionXLPipeline if args.sdxl else diffusers.StableDiffusionPipeline
    pipe = cls(**components).to(device, dtype)
    name, options = DIFFUSERS_SCHEDULERS[args.sampler]
    pipe.scheduler = getattr(diffusers, name).from_config({**pipe.scheduler.config, **options})
    pipe.set_progress_bar_config(disable=True)

    def make_run(batch: int):
        def run():
            generator = torch.Generator("cpu").manual_seed(1)
            with torch.inference_mode():
                pipe(
                    _payload(args, size, batch)["prompt"],
                    num_inference_steps=args.steps,
                    guidance_scale=7,
                    width=size[0],
                    height=size[1],
                    num_images_per_prompt=batch,
                    generator=generator,
                )

        return run

    return make_run


def _quiet() -> None:
    """Deprecation chatter from the libraries would bury the figures."""
    import warnings

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    warnings.filterwarnings("ignore")
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()


def fastpath_sides(path: Path, args, size: tuple[int, int], names: list[str]) -> dict:
    """One Generator per variant, each warmed by a 1-step job (loading, and compiling where asked)."""
    from openesd.generation import GenerationRequest, Generator
    from openesd.generation.models.fastpath import FastPath

    models = {"Stable-diffusion": [path]}
    sides = {}
    for name in ["plain", *names]:
        options = {k: v or args.compile_mode for k, v in FASTPATH.get(name, {}).items()}
        generator = Generator(device=args.device, fastpath=FastPath(**options))
        start = time.perf_counter()
        generator.run(GenerationRequest("txt2img", _payload(args, size, 1, steps=1), models))
        print(f"{name:18s} load + warm-up: {time.perf_counter() - start:.1f} s", flush=True)
        sides[name] = lambda batch, g=generator: (
            lambda: g.run(GenerationRequest("txt2img", _payload(args, size, batch), models))
        )
    return sides


def fastpath_main(args, size: tuple[int, int], spec) -> None:
    # Compiling even the tiny UNet takes minutes on a CPU: there only when asked by --settings.
    names = args.settings.split(",") if args.settings else [n for n in FASTPATH if spec.is_cuda or n not in CPU_SKIPS]
    unknown = [n for n in names if n not in FASTPATH]
    if unknown:
        raise SystemExit(f"unknown --settings {', '.join(unknown)}; valid: {', '.join(FASTPATH)}")
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        path = _checkpoint(args, Path(tmp), spec)
        results = measure(fastpath_sides(path, args, size, names), batches, args.repeats)
    plain = results.pop("plain")
    for name, result in results.items():
        print(
            f"speed-up {name:18s}: {plain['per_image'] / result['per_image']:.3f}x batch 1, "
            f"{result['throughput'] / plain['throughput']:.3f}x best throughput",
            flush=True,
        )


def _checkpoint(args, folder: Path, spec) -> Path:
    if args.tiny:
        from tests.support import tiny_models as tm

        return tm.write_tiny_sd15_checkpoint(folder / "tiny-sd15.safetensors")
    return build_checkpoint(args.sdxl, folder, half=spec.is_cuda)[1]


def main() -> None:
    import torch

    from openesd.generation.models.device import resolve

    args = parse_args()
    _quiet()
    spec = resolve(args.device)
    if args.family != "sd":
        from _flow import flow_main  # bench/ is this script's folder

        return flow_main(args, spec, measure)
    default = 1024 if args.sdxl else 512
    size = (args.width or default, args.height or default)
    batches = [int(b) for b in args.batches.split(",")]
    print(
        f"{'SDXL' if args.sdxl else 'SD 1.5'} architecture, random weights, {size[0]}x{size[1]}, "
        f"{args.steps} steps, {args.sampler}, device {spec.device}, dtype {spec.dtype}, torch {torch.__version__}",
        flush=True,
    )
    if args.fastpath:
        return fastpath_main(args, size, spec)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        components, path = build_checkpoint(args.sdxl, Path(tmp), half=spec.is_cuda)
        print(
            f"built and saved {path.stat().st_size / 2**30:.2f} GiB in {time.perf_counter() - start:.1f} s", flush=True
        )
        generator, make_ours = ours(path, args, size)
        make_theirs = plain_diffusers(components, args, size, spec.device, spec.dtype)
        results = measure({"ours": make_ours, "diffusers": make_theirs}, batches, args.repeats)
    ours_result, theirs = results["ours"], results["diffusers"]
    print(
        f"ratio ours/diffusers: {ours_result['per_image'] / theirs['per_image']:.3f}x time per image (batch 1), "
        f"{ours_result['throughput'] / theirs['throughput']:.3f}x best throughput",
        flush=True,
    )


if __name__ == "__main__":
    main()
