"""Serving under concurrent load: N clients each submit real-time txt2img jobs through the API to one endpoint
instance, against a plain diffusers loop over the same jobs in one process (the same model file and device).

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/serve.py [--clients 1,4] [--jobs 4] [--steps 4] [--size 64]
GPU:   .venv/bin/python bench/serve.py --model sd15.safetensors --device cuda --clients 1,4,16 --steps 25 --size 512
Ray:   add `--engine ray` (each server starts a local Ray instance; the replica batches and routes, docs: batching)

Figures: images/s (all jobs of the N clients, first submit to last answer) and each job's latency (p50, p99)
through `POST /inferences` (Real-time, `payload_string`), with batching across jobs on (the settings'
defaults) and off (`OPENESD_BATCH_MAX_JOBS=1`), each as a ratio to the plain loop measured in the same run:
the diffusers pipeline the worker loads, its own scheduler (Euler) and CFG, one `pipe(...)` per job. Every
client's jobs differ in seed, prompt and CFG and share model, size, sampler and steps (they may batch).
Without --model the tiny random-weight SD 1.5 model of the tests is written and used (CPU figures).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dispatch import KEY, Api  # noqa: E402  (the same server handling and checkpoint upload)
from tests.support.server import ServerProcess  # noqa: E402


def payloads(count: int, steps: int, size: int) -> list[dict]:
    prompts = ("a red fox", "a blue bird on a branch", "a lighthouse at dusk", "a bowl of ramen")
    return [
        {
            "prompt": prompts[i % len(prompts)],
            "negative_prompt": "blurry",
            "seed": 1000 + i,
            "steps": steps,
            "width": size,
            "height": size,
            "sampler_name": "Euler",
            "cfg_scale": 5 + i % 4,
            "batch_size": 1,
            "n_iter": 1,
        }
        for i in range(count)
    ]


class PlainLoop:
    """The worker's own pipeline for the file, driven the plain diffusers way: one call per job."""

    def __init__(self, model: Path, device: str):
        import torch
        from diffusers import EulerDiscreteScheduler
        from diffusers.utils import logging as diffusers_logging

        from openesd.generation.models.loading import load_checkpoint

        diffusers_logging.set_verbosity_error()
        dtype = torch.float16 if device == "cuda" else torch.float32
        self.pipe = load_checkpoint(model, torch.device(device), dtype).pipe
        self.pipe.scheduler = EulerDiscreteScheduler.from_config(self.pipe.scheduler.config)
        self.pipe.set_progress_bar_config(disable=True)
        self.device = device

    def job(self, payload: dict) -> float:
        import torch

        begin = time.perf_counter()
        self.pipe(
            payload["prompt"],
            negative_prompt=payload["negative_prompt"],
            num_inference_steps=payload["steps"],
            guidance_scale=payload["cfg_scale"],
            width=payload["width"],
            height=payload["height"],
            generator=torch.Generator(self.device).manual_seed(payload["seed"]),
        )
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - begin

    def run(self, jobs: list[dict]) -> dict:
        begin = time.perf_counter()
        latencies = [self.job(p) for p in jobs]
        return {"rate": len(jobs) / (time.perf_counter() - begin), "latencies": latencies}


def through_api(api: Api, endpoint: str, model: str, clients: int, jobs: list[dict]) -> dict:
    """`clients` threads, each submitting its share of `jobs` one after another (a real-time call waits)."""

    def one(payload: dict) -> float:
        begin = time.perf_counter()
        answer = api.http.post(
            "/inferences",
            json={
                "task_type": "txt2img",
                "inference_type": "Real-time",
                "sagemaker_endpoint_name": endpoint,
                "models": {"Stable-diffusion": [model]},
                "payload_string": json.dumps(payload),
            },
        )
        assert answer.status_code == 200 and answer.json()["data"]["status"] == "succeed", answer.text
        return time.perf_counter() - begin

    def client(share: list[dict]) -> list[float]:
        return [one(p) for p in share]

    begin = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for got in pool.map(client, [jobs[i::clients] for i in range(clients)]) for t in got]
    return {"rate": len(jobs) / (time.perf_counter() - begin), "latencies": latencies}


class Server:
    """One `openesd serve` with a warm real-time endpoint on the model."""

    def __init__(self, model: Path, data_dir: Path, batching: bool, warm: dict, engine: str):
        settings = {"api_keys": KEY, "engine_url": engine} | ({} if batching else {"batch_max_jobs": "1"})
        self.process = ServerProcess(data_dir, **settings)
        self.api, self.model = Api(self.process.base), model.name
        self.api.upload_model(model)
        self.endpoint = self.api.endpoint("Real-time", "rt")
        self.run(1, [warm])  # the worker loads the model

    def run(self, clients: int, jobs: list[dict]) -> dict:
        return through_api(self.api, self.endpoint, self.model, clients, jobs)


def measure(
    model: Path, scratch: Path, device: str, runs: list[tuple[int, list[dict]]], rounds: int, engine: str
) -> list:
    """Per client count, `rounds` rounds of plain loop, batching on, batching off, one after another (load on
    the machine hits all three alike); each figure the round with the median rate."""
    servers = [Server(model, scratch / name, name == "on", runs[0][1][0], engine) for name in ("on", "off")]
    try:
        loop = PlainLoop(model, device)
        loop.job(runs[0][1][0])  # warm, as the endpoints are
        figures = []
        for clients, jobs in runs:
            got = [[loop.run(jobs), *(s.run(clients, jobs) for s in servers)] for _ in range(rounds)]
            figures.append([_median_round([r[i] for r in got]) for i in range(3)])
        return figures
    finally:
        for server in servers:
            server.process.stop()


def _median_round(results: list[dict]) -> dict:
    return sorted(results, key=lambda r: r["rate"])[len(results) // 2]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, got: dict, plain: dict) -> str:
    lat = got["latencies"]
    return (
        f"  {name:<22}{got['rate']:8.2f} images/s  ratio {got['rate'] / plain['rate']:5.2f}x   "
        f"p50 {statistics.median(lat) * 1000:8.0f} ms  p99 {percentile(lat, 0.99) * 1000:8.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    parser.add_argument("--jobs", type=int, default=4, help="jobs per client")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", type=Path, help="an SD 1.5 single file (default: the tiny test model)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (the median is reported)")
    parser.add_argument("--engine", default="local", choices=("local", "ray"), help="the servers' engine")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if model is None:
            from tests.support.tiny_models import write_tiny_sd15_checkpoint

            model = write_tiny_sd15_checkpoint(Path(scratch) / "bench-tiny-sd15.safetensors")
        runs = [(n, payloads(n * args.jobs, args.steps, args.size)) for n in counts]
        figures = measure(model, Path(scratch), args.device, runs, args.rounds, args.engine)
    print(
        f"txt2img {args.size}x{args.size}, {args.steps} steps Euler, {model.name}, {args.device}, "
        f"{args.engine} engine, one instance; "
        f"{args.jobs} jobs per client, median of {args.rounds} rounds; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    for (clients, _), (base, on, off) in zip(runs, figures):
        print(f"N = {clients} clients:")
        print(report("plain diffusers loop", base, base))
        print(report("API, batching on", on, base))
        print(report("API, batching off", off, base))


if __name__ == "__main__":
    main()
