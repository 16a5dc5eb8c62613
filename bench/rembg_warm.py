"""The first rembg job (with alpha matting) of a fresh worker process, with and without the worker's start-up
warm-up (`warm_rembg`: pymatting's numba code compiled in the background before the job arrives).

Each side runs in a fresh interpreter: the Generator is built (as a worker does), then `cold` runs the job at
once while `warm` first lets warm_alpha_matting() finish (the worker's background thread, given the time an
endpoint takes to become InService). --fresh-numba-cache points NUMBA_CACHE_DIR at an empty folder, as on a
fresh install (where the first alpha matting took 74 s on the issue's machine).

    python bench/rembg_warm.py [--fresh-numba-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SIDE = """
import base64, io, json, sys, time
from pathlib import Path
from PIL import Image
from openesd.generation import GenerationRequest, Generator
generator = Generator(device="cpu")
if sys.argv[2] == "warm":
    from openesd.generation.tasks.rembg import warm_alpha_matting
    started = time.perf_counter(); warm_alpha_matting(); warmed = time.perf_counter() - started
else:
    warmed = 0.0
buffer = io.BytesIO(); Image.new("RGB", (96, 96), (200, 40, 40)).save(buffer, "PNG")
image = base64.b64encode(buffer.getvalue()).decode()
payload = {"model": "u2net_human_seg", "input_image": image, "alpha_matting": True}
started = time.perf_counter()
generator.run(GenerationRequest("rembg", payload, {"rembg": [Path(sys.argv[1])]}))
print(json.dumps({"warm_up": warmed, "first_job": time.perf_counter() - started}))
"""


def run_side(model: Path, side: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", SIDE, str(model), side], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh-numba-cache", action="store_true")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    from tests.support.tiny_extras import write_tiny_u2net_onnx

    with tempfile.TemporaryDirectory() as scratch:
        model = write_tiny_u2net_onnx(Path(scratch) / "u2net_human_seg.onnx")
        env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        results = {}
        for side in ("cold", "warm"):
            if args.fresh_numba_cache:
                env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(dir=scratch)
            results[side] = run_side(model, side, env)
    cold, warm = results["cold"], results["warm"]
    print(f"first rembg job, no warm-up:   {cold['first_job']:7.2f} s")
    print(f"first rembg job after warm-up: {warm['first_job']:7.2f} s  (warm-up itself {warm['warm_up']:.2f} s)")
    print(f"ratio (warm / cold first job): {warm['first_job'] / cold['first_job']:.2f}")


if __name__ == "__main__":
    main()
