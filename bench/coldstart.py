"""Cold start: endpoint create -> InService -> first image through a real `openesd serve`, against plain
diffusers loading the same single file (`from_single_file`) in a fresh process and making the same image.

The model is SD 1.5's architecture with random weights (tiny by default; --full for the real size, a GPU
run), written as an A1111 single file and uploaded through the SDK. Three endpoints in one run: one with
`preload_models` (warm), one without (cold), each timed from POST /endpoints; the figures to report are the
ratios against the plain diffusers process (issue 18's goals: InService within 1.2x of the plain load, and
a first image after InService that loads nothing: the warm endpoint's first job as quick as its second).

    python bench/coldstart.py                 # CPU, tiny model
    python bench/coldstart.py --full --steps 25 --size 512   # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

KEY = "bench0123456789ABCDE"

# The plain side: a fresh interpreter, imports, from_single_file, one image; prints its phase times.
PLAIN = """
import json, sys, time
started = float(sys.argv[4])
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
device = "cuda" if torch.cuda.is_available() else "cpu"
dtype = torch.float16 if device == "cuda" else torch.float32
pipe = StableDiffusionPipeline.from_single_file(sys.argv[1], config=sys.argv[2], local_files_only=True,
    torch_dtype=dtype, safety_checker=None, requires_safety_checker=False).to(device)
pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
loaded = time.time()
steps, size = (int(v) for v in sys.argv[3].split(","))
pipe("a red fox", num_inference_steps=steps, width=size, height=size,
     generator=torch.Generator(device).manual_seed(42)).images[0]
print(json.dumps({"loaded": loaded - started, "image": time.time() - started}))
"""


def write_model(folder: Path, full: bool) -> tuple[Path, Path]:
    """The A1111 single file and a diffusers config folder (what from_single_file needs offline)."""
    from diffusers import StableDiffusionPipeline

    from openesd.modeltools.export import save_single_file
    from tests.support import tiny_models

    components = tiny_models.full_sd15_components() if full else tiny_models.tiny_sd15_components()
    single = save_single_file(components, folder / "coldstart-model.safetensors")
    config = folder / "diffusers-config"
    StableDiffusionPipeline(**components, requires_safety_checker=False).save_pretrained(config)
    return single, config


def plain_diffusers(single: Path, config: Path, steps: int, size: int) -> dict:
    args = [sys.executable, "-c", PLAIN, str(single), str(config), f"{steps},{size}", str(time.time())]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def endpoint_run(client, name: str, model: str, preload: bool, steps: int, size: int) -> dict:
    """Seconds from POST /endpoints to InService, to the first image, and of a second (warm) job."""
    started = time.monotonic()
    client.endpoints.create(name=name, preload_models=[model] if preload else None)
    endpoint = f"esd-async-{name}"
    client.endpoints.wait_for(endpoint, interval=0.05, timeout=1800)
    ready = time.monotonic() - started
    options = dict(models={"Stable-diffusion": [model]}, endpoint_name=endpoint, interval=0.05, steps=steps)
    client.generate(prompt="a red fox", width=size, height=size, seed=42, **options)
    first = time.monotonic() - started
    again = time.monotonic()
    client.generate(prompt="a red fox", width=size, height=size, seed=43, **options)
    second = time.monotonic() - again
    client.endpoints.delete([endpoint])  # one live endpoint per role: the next run's may start
    return {"ready": ready, "image": first, "first_job": first - ready, "second_job": second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="SD 1.5's real size (random weights), for a GPU")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    from openesd.client import Client
    from tests.support.server import ServerProcess

    with tempfile.TemporaryDirectory(dir=".") as scratch:
        root = Path(scratch)
        single, config = write_model(root, args.full)
        plain = plain_diffusers(single, config, args.steps, args.size)
        server = ServerProcess(root / "data", api_keys=KEY)
        try:
            client = Client(server.base, KEY)
            client.checkpoints.upload(single, "Stable-diffusion")
            warm = endpoint_run(client, "warm", single.name, True, args.steps, args.size)
            cold = endpoint_run(client, "cold", single.name, False, args.steps, args.size)
        finally:
            server.stop()
    report(plain, warm, cold, args)


def report(plain: dict, warm: dict, cold: dict, args: argparse.Namespace) -> None:
    print(f"model: SD 1.5 {'full' if args.full else 'tiny'}, {args.steps} steps, {args.size}x{args.size}")
    print(f"plain diffusers (fresh process): loaded {plain['loaded']:6.2f} s, first image {plain['image']:6.2f} s")
    for name, run in (("warm (preload_models)", warm), ("cold (no preload)", cold)):
        print(
            f"{name:22s}: InService {run['ready']:6.2f} s, first image {run['image']:6.2f} s "
            f"(first job {run['first_job']:.2f} s, second job {run['second_job']:.2f} s)"
        )
    print(f"ratio InService (warm) / plain load: {warm['ready'] / plain['loaded']:.2f}  (goal <= 1.2)")
    print(f"ratio first image (warm) / plain first image: {warm['image'] / plain['image']:.2f}")
    print(f"ratio first job / second job (warm): {warm['first_job'] / warm['second_job']:.2f}  (1.0: nothing loaded)")
    print(f"ratio first job / second job (cold): {cold['first_job'] / cold['second_job']:.2f}")


if __name__ == "__main__":
    main()
