"""Benchmark: switching checkpoints and LoRAs on a warm worker, each against a baseline of the same run.

1. Model switch. A job on checkpoint B right after a job on A, with B already in the Generator's
   ModelCache, against plain diffusers loading B (`StableDiffusionPipeline.from_single_file`, the same
   config folder, device and precision, in this process). The switch's cost is the switch job minus a
   job that stays on A. For context it also times B's cold load through our loader (a fresh Generator).
2. LoRA switch. Jobs alternating LoRA X and LoRA Y (each one a switch; both read from disk once, in the
   warm-up) against the same job without a LoRA. With --compile-mode the UNet is compiled and the LoRAs
   are merged into its weights (adapters/_merged.py); the run fails if a LoRA switch recompiled it.

The models are the tests' tiny SD 1.5 by default (CPU figures); --model PATH, once or twice, times real
single files (one file is hard-linked, or copied, to a second path so that it is cached twice). The LoRAs
are random kohya-format LoRAs built for the model's own modules (rank 4 on every attention projection).

    python bench/switch.py                                                      # CPU, tiny model
    python bench/switch.py --model sd15.safetensors --steps 25 --size 512       # GPU
    python bench/switch.py --model sd15.safetensors --steps 25 --size 512 --compile-mode max-autotune-no-cudagraphs
    python bench/switch.py --compile-mode default --compile-backend eager    # CPU: the merged-LoRA path, no inductor
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], help="a single-file checkpoint (once or twice)")
    parser.add_argument("--steps", type=int, default=None, help="default 4 (tiny) or 25")
    parser.add_argument("--size", type=int, default=None, help="default 64 (tiny) or 512")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (the best of each figure is kept)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile-mode", default="off", help="torch.compile mode of the UNet (default off)")
    parser.add_argument("--compile-backend", default="inductor", help="'eager': dynamo alone (CPU runs)")
    args = parser.parse_args()
    if len(args.model) > 2:
        parser.error("--model: at most two checkpoints (A and B)")
    tiny = not args.model
    args.steps = args.steps or (4 if tiny else 25)
    args.size = args.size or (64 if tiny else 512)
    return args


def checkpoints(args: argparse.Namespace, folder: Path) -> tuple[Path, Path]:
    """A and B: the tiny model written twice, or the given file(s); B must be a different path to be cached apart."""
    if not args.model:
        from tests.support import tiny_models

        return tuple(tiny_models.write_tiny_sd15_checkpoint(folder / f"tiny-{n}.safetensors") for n in "ab")  # type: ignore[return-value]
    a = Path(args.model[0]).resolve()
    if len(args.model) == 2:
        return a, Path(args.model[1]).resolve()
    b = folder / f"b-{a.name}"
    try:
        os.link(a, b)
    except OSError:
        shutil.copyfile(a, b)
    return a, b


def write_lora(pipe: Any, family: str, path: Path, seed: int) -> Path:
    """A random kohya LoRA that fits this pipeline's own modules (any size of SD 1.x or SDXL)."""
    from safetensors.torch import save_file

    from tests.support import tiny_adapters

    build = (
        tiny_adapters.kohya_sdxl_lora_state_dict if family.startswith("sdxl") else tiny_adapters.kohya_lora_state_dict
    )
    state = build(dict(pipe.components), seed=seed, scale=0.05)
    save_file({k: v.detach().float().cpu().contiguous() for k, v in state.items()}, str(path))
    return path


class Jobs:
    """One Generator; each call runs one txt2img job and returns its seconds."""

    def __init__(self, args: argparse.Namespace, models: dict[str, list[Path]]):
        from openesd.generation import Generator
        from openesd.generation.models.fastpath import FastPath

        self.args, self.models = args, models
        self.generator = Generator(
            device=args.device, fastpath=FastPath(compile_mode=args.compile_mode, compile_backend=args.compile_backend)
        )

    def __call__(self, checkpoint: Path, lora: str = "") -> float:
        from openesd.generation import GenerationRequest

        payload = {
            "prompt": f"a red fox {lora}".strip(),
            "seed": 42,
            "steps": self.args.steps,
            "width": self.args.size,
            "height": self.args.size,
            "sampler_name": "Euler",
            "override_settings": {"sd_model_checkpoint": checkpoint.stem},
        }
        started = time.perf_counter()
        self.generator.run(GenerationRequest("txt2img", payload, self.models))
        return time.perf_counter() - started

    def pipe(self, checkpoint: Path) -> Any:
        return self.generator.cache.get("checkpoint", checkpoint, lambda: None)


def plain_load(checkpoint: Path, ours: Any, folder: Path, device: Any, dtype: Any) -> float:
    """diffusers' own single-file load of the checkpoint, offline: our detected config folder, with the
    model_index.json of our pipeline of the same file (`ours`) so that diffusers knows its components."""
    import torch

    from openesd.generation.models.loading import detect_architecture, read_state_dict, write_config_folder

    config = folder / "plain-config"
    if not config.exists():
        shutil.copytree(write_config_folder(detect_architecture(read_state_dict(checkpoint), checkpoint)), config)
        ours.save_config(config)
    started = time.perf_counter()
    pipe = type(ours).from_single_file(str(checkpoint), config=str(config), local_files_only=True, torch_dtype=dtype)
    pipe.to(device)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    del pipe
    gc.collect()
    return seconds


def graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def model_switch(jobs: Jobs, a: Path, b: Path, folder: Path, repeats: int) -> dict[str, float]:
    stay, switch = [], []
    for _ in range(repeats):
        jobs(a)
        stay.append(jobs(a))
        switch.append(jobs(b))
    device = jobs.generator.device
    ours = jobs.pipe(b).pipe
    plain = min(plain_load(b, ours, folder, device.device, device.dtype) for _ in range(min(repeats, 2)))
    cold = Jobs(jobs.args, jobs.models)
    cold_job = cold(b)
    del cold
    gc.collect()
    return {"stay_s": min(stay), "switch_s": min(switch), "plain_load_s": plain, "cold_job_s": cold_job}


def lora_switch(jobs: Jobs, a: Path, repeats: int) -> dict[str, float]:
    none, loras = [], []
    compiled = graphs()
    for _ in range(repeats):
        jobs(a)
        none.append(jobs(a))
        loras.append(jobs(a, "<lora:x:0.8>"))
        loras.append(jobs(a, "<lora:y:0.8>"))
    if jobs.args.compile_mode != "off" and graphs() != compiled:
        raise SystemExit(f"a LoRA switch recompiled the UNet ({compiled} -> {graphs()} graphs)")
    return {"no_lora_s": min(none), "lora_switch_s": min(loras)}


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-switch-") as tmp:
        folder = Path(tmp)
        a, b = checkpoints(args, folder)
        lora_dir = folder / "lora"
        lora_dir.mkdir()
        models = {"Stable-diffusion": [a, b], "Lora": [lora_dir / "x.safetensors", lora_dir / "y.safetensors"]}
        jobs = Jobs(args, models)
        # Warm-up: both checkpoints in the cache (compiled, with --compile-mode), both LoRAs read once.
        first_a = jobs(a)
        loaded = jobs.pipe(a)
        for seed, path in enumerate(models["Lora"]):
            write_lora(loaded.pipe, loaded.family, path, seed=seed + 5)
        first_b = jobs(b)
        first_lora = [jobs(a, "<lora:x:0.8>"), jobs(a, "<lora:y:0.8>")]
        model = model_switch(jobs, a, b, folder, args.repeats)
        lora = lora_switch(jobs, a, args.repeats)
    report(args, model, lora, {"first_job_a_s": first_a, "first_job_b_s": first_b, "first_lora_job_s": max(first_lora)})


def report(args: argparse.Namespace, model: dict, lora: dict, warm_up: dict) -> None:
    overhead = max(model["switch_s"] - model["stay_s"], 0.0)
    print(f"model switch ({args.size}², {args.steps} steps, compile {args.compile_mode}, best of {args.repeats}):")
    print(f"  job staying on A            {model['stay_s']:.3f} s")
    print(f"  job switching A -> B cached {model['switch_s']:.3f} s   switch cost {overhead:.3f} s")
    print(
        f"  plain from_single_file(B)   {model['plain_load_s']:.3f} s   (our cold job on B {model['cold_job_s']:.3f} s)"
    )
    print(f"  switch job / (plain load + job) = {model['switch_s'] / (model['plain_load_s'] + model['stay_s']):.3f}x")
    print(f"  switch cost / plain load        = {overhead / model['plain_load_s']:.3f}x   (goal <= 0.05x)")
    print("LoRA switch (X then Y, each job a switch):")
    print(f"  job without a LoRA          {lora['no_lora_s']:.3f} s")
    print(f"  job switching LoRA          {lora['lora_switch_s']:.3f} s")
    print(f"  LoRA switch job / no-LoRA job   = {lora['lora_switch_s'] / lora['no_lora_s']:.3f}x   (goal <= 1.10x)")
    print(json.dumps({"model": model, "lora": lora, "warm_up": warm_up}))


if __name__ == "__main__":
    main()
