"""What the control plane adds to a trivial job: a real `openesd serve` + local engine vs. the worker's
Generator called directly in this process, the same tiny model and job (txt2img, 1 step, 64x64).

Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/dispatch.py [--jobs 20] [--batch 20]

Both sides run in one invocation on the same CPU (one worker instance, warm model), direct and
real-time jobs interleaved one by one so that other load on the machine hits both alike; the figures
to report are the ratios. Measured through the API:
  * real-time latency: `POST /inferences` with `payload_string` on a Real-time endpoint, until the 200;
  * dispatch latency: from an async start's 202 until `GET /inferences/{id}` shows the worker began
    (polled every 2 ms, so it includes the reporter's database write);
  * throughput: `--batch` async jobs started at once, until every one is `succeed`, against the same
    number of direct calls back to back.
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

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import ServerProcess  # noqa: E402  (the server the tests start, started the same way)

KEY = "bench0123456789ABCDE"
HEADERS = {"x-api-key": KEY, "username": "api"}
MODEL = "bench-tiny-sd15.safetensors"
PAYLOAD = {
    "prompt": "a red fox",
    "seed": 1,
    "steps": 1,
    "width": 64,
    "height": 64,
    "sampler_name": "Euler",
    "cfg_scale": 7,
    "batch_size": 1,
    "n_iter": 1,
}


# -- direct: the Generator in this process ---------------------------------------------------------
class Direct:
    """The worker's own Generator, called in this process on the same model file (kept warm)."""

    def __init__(self, model: Path):
        from diffusers.utils import logging as diffusers_logging

        from openesd.generation import GenerationRequest, Generator, parse_payload

        diffusers_logging.set_verbosity_error()  # per-job warnings would be timed too
        generator, text = Generator(device="cpu"), json.dumps(PAYLOAD)
        self._one = lambda: generator.run(
            GenerationRequest("txt2img", parse_payload(text), {"Stable-diffusion": [model]})
        )
        self._one()  # load the model once, as a warm worker has

    def job(self) -> float:
        begin = time.perf_counter()
        self._one()
        return time.perf_counter() - begin

    def throughput(self, batch: int) -> float:
        begin = time.perf_counter()
        for _ in range(batch):
            self._one()
        return batch / (time.perf_counter() - begin)


# -- through the API -------------------------------------------------------------------------------
class Api:
    def __init__(self, base: str):
        self.http = httpx.Client(base_url=f"{base}/prod", headers=HEADERS, timeout=600)

    def upload_model(self, path: Path) -> None:
        created = self.http.post(
            "/checkpoints",
            json={
                "checkpoint_type": "Stable-diffusion",
                "params": {},
                "filenames": [{"filename": path.name, "parts_number": 1}],
            },
        ).json()["data"]
        put = httpx.put(created["s3PresignUrl"][path.name][0], content=path.read_bytes(), timeout=600)
        put.raise_for_status()
        self.http.put(
            f"/checkpoints/{created['checkpoint']['id']}",
            json={
                "status": "Active",
                "multi_parts_tags": {path.name: [{"ETag": put.headers["ETag"], "PartNumber": 1}]},
            },
        ).raise_for_status()

    def endpoint(self, endpoint_type: str, role: str) -> str:
        answer = self.http.post(
            "/endpoints",
            json={
                "endpoint_type": endpoint_type,
                "instance_type": "cpu",
                "initial_instance_count": 1,
                "autoscaling_enabled": False,
                "assign_to_roles": [role],
                "creator": "api",
                "endpoint_name": "bench",
            },
        )
        name = answer.json()["data"]["endpoint_name"]
        for _ in range(6000):
            listed = self.http.get("/endpoints", params={"limit": 100}).json()["data"]["endpoints"]
            status = next(e["endpoint_status"] for e in listed if e["endpoint_name"] == name)
            if status == "InService":
                return name
            if status == "Failed":
                raise SystemExit(f"endpoint {name} failed")
            time.sleep(0.1)
        raise SystemExit(f"endpoint {name} never became InService")

    def run(self, endpoint: str, inference_type: str) -> httpx.Response:
        return self.http.post(
            "/inferences",
            json={
                "task_type": "txt2img",
                "inference_type": inference_type,
                "sagemaker_endpoint_name": endpoint,
                "models": {"Stable-diffusion": [MODEL]},
                "payload_string": json.dumps(PAYLOAD),
            },
        )

    def job(self, job_id: str) -> dict:
        return self.http.get(f"/inferences/{job_id}").json()["data"]

    def real_time(self, endpoint: str) -> float:
        begin = time.perf_counter()
        answer = self.run(endpoint, "Real-time")
        assert answer.status_code == 200 and answer.json()["data"]["status"] == "succeed", answer.text
        return time.perf_counter() - begin

    def dispatch(self, endpoint: str) -> float:
        """Seconds from the async start's answer until the job shows that a worker began it."""
        answer = self.run(endpoint, "Async")
        assert answer.status_code == 202, answer.text
        started, job_id = time.perf_counter(), answer.json()["data"]["inference"]["inference_id"]
        while True:
            job = self.job(job_id)
            if job["status"] in ("succeed", "failed") or (job.get("progress") or {}).get("phase") != "queued":
                seen = time.perf_counter() - started
                break
            time.sleep(0.002)
        self.wait(job_id)
        return seen

    def wait(self, job_id: str) -> None:
        while (job := self.job(job_id))["status"] not in ("succeed", "failed"):
            time.sleep(0.05)  # sparse polls: on a small machine they would take CPU from the worker
        assert job["status"] == "succeed", job.get("sagemakerRaw")

    def throughput(self, endpoint: str, batch: int) -> float:
        begin = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: self.run(endpoint, "Async"), range(batch)))
        for answer in answers:
            self.wait(answer.json()["data"]["inference"]["inference_id"])
        return batch / (time.perf_counter() - begin)


def measure(model: Path, data_dir: Path, jobs: int, batch: int) -> dict:
    """Both sides in one run, interleaved job by job so that load changes on the machine hit both."""
    server = ServerProcess(data_dir, api_keys=KEY)
    try:
        api = Api(server.base)
        api.upload_model(model)
        real_time, async_ = api.endpoint("Real-time", "rt"), api.endpoint("Async", "async")
        api.real_time(real_time)  # warm both workers (model load)
        api.dispatch(async_)
        direct = Direct(model)
        pairs = [(direct.job(), api.real_time(real_time)) for _ in range(jobs)]
        return {
            "direct": [d for d, _ in pairs],
            "real_time": [r for _, r in pairs],
            "dispatch": [api.dispatch(async_) for _ in range(jobs)],
            "direct_rate": direct.throughput(batch),
            "api_rate": api.throughput(async_, batch),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="timed jobs per latency figure")
    parser.add_argument("--batch", type=int, default=20, help="async jobs started at once for throughput")
    args = parser.parse_args()
    from tests.support.tiny_models import write_tiny_sd15_checkpoint

    with tempfile.TemporaryDirectory() as scratch:
        model = Path(scratch) / MODEL
        write_tiny_sd15_checkpoint(model)
        got = measure(model, Path(scratch) / "data", args.jobs, args.batch)
    med = statistics.median
    direct_s, real_time_s = med(got["direct"]), med(got["real_time"])
    print(
        f"job: txt2img, 1 step, 64x64, tiny SD 1.5 model, CPU, one warm worker; {args.jobs} timed jobs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(f"direct Generator.run       : {direct_s * 1000:8.1f} ms/job (median)")
    print(
        f"API real-time start        : {real_time_s * 1000:8.1f} ms/job (median)  "
        f"ratio {real_time_s / direct_s:.2f}x, adds {(real_time_s - direct_s) * 1000:.1f} ms"
    )
    print(
        f"API async start -> worker  : {med(got['dispatch']) * 1000:8.1f} ms (median, p90 "
        f"{statistics.quantiles(got['dispatch'], n=10)[-1] * 1000:.1f} ms)"
    )
    print(
        f"{args.batch} jobs back to back: direct {got['direct_rate']:6.2f} jobs/s, API async (all started at once) "
        f"{got['api_rate']:6.2f} jobs/s  ratio {got['direct_rate'] / got['api_rate']:.2f}x"
    )


if __name__ == "__main__":
    main()
