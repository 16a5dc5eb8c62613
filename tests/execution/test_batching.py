"""Batching across jobs on the engine: which queued jobs go together (execution/_batching.py), and on the real
local engine a batch gives each job the images it gets alone, cancels one job alone, and never mixes
incompatible jobs."""

from __future__ import annotations

import json
from collections import deque

import pytest

from openesd.execution._batching import Batcher, batch_key
from openesd.execution.base import JobSpec
from tests.support.generation_jobs import txt2img_payload

STEPS = 8  # long enough for the cancel to land mid-sampling
MODELS = {"Stable-diffusion": [{"id": "tiny", "model_name": "tiny.safetensors", "key": "k"}]}


def spec(job_id: str, task: str = "txt2img", models: dict | None = None, **payload) -> JobSpec:
    body = json.dumps(txt2img_payload(**payload))
    return JobSpec(job_id, "e", task, "key", payload_string=body, models=models or MODELS)


def taken(batcher: Batcher, jobs: list[JobSpec], now: float | None = None) -> list[list[str]]:
    queue, rounds = deque(jobs), []
    while queue:
        batch = batcher.take(queue, now)
        if not batch:
            break
        rounds.append([job.id for job in batch])
    return rounds


def test_jobs_differing_in_prompts_seeds_cfg_and_batch_size_go_together():
    jobs = [
        spec("a"),
        spec("b", seed=7, prompt="a cat", negative_prompt="dark", cfg_scale=3, batch_size=2, n_iter=2),
        spec("c", seed=-1),
    ]
    assert taken(Batcher(8, 10**6, 0), jobs) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "other",
    [
        spec("x", width=128),
        spec("x", steps=3),
        spec("x", sampler_name="DPM++ 2M"),
        spec("x", scheduler="Karras"),
        spec("x", prompt="a red fox <lora:style:1>"),
        spec("x", enable_hr=True),
        spec("x", override_settings={"sd_vae": "other.safetensors"}),
        spec("x", models={"Stable-diffusion": [{"id": "other", "model_name": "o.safetensors", "key": "o"}]}),
        spec("x", alwayson_scripts={"controlnet": {"args": []}}),
        spec("x", script_name="x/y/z plot"),
        spec("x", task="img2img"),
    ],
)
def test_incompatible_jobs_never_go_together(other):
    assert taken(Batcher(8, 10**6, 0), [spec("a"), other, spec("b")]) == [["a", "b"], ["x"]]


def test_same_lora_set_goes_together_and_the_caps_split_a_batch():
    lora = [spec(f"l{i}", prompt=f"fox {i} <lora:style:0.5>", seed=i) for i in range(3)]
    assert taken(Batcher(8, 10**6, 0), lora) == [["l0", "l1", "l2"]]
    plain = [spec(f"p{i}", seed=i) for i in range(5)]
    assert taken(Batcher(2, 10**6, 0), plain) == [["p0", "p1"], ["p2", "p3"], ["p4"]]
    # 64x64 is 64 latent pixels a row; batch_size 2 counts twice.
    sized = [spec("s0"), spec("s1", batch_size=2), spec("s2")]
    assert taken(Batcher(8, 128, 0), sized) == [["s0", "s2"], ["s1"]]
    assert batch_key(spec("h", enable_hr=True, hr_scale=2))[1] == 256


def test_the_first_job_waits_for_mates_up_to_the_wait():
    batcher = Batcher(3, 10**6, 5.0)
    queue = deque([spec("a"), spec("b")])
    assert batcher.take(queue) == []  # two of three, queued just now: wait
    assert [j.id for j in batcher.take(queue, now=10**9)] == ["a", "b"]  # waited long enough
    assert taken(Batcher(2, 10**6, 5.0), [spec("c"), spec("d")]) == [["c", "d"]]  # full: no wait


def test_a_job_that_is_not_batchable_never_waits():
    assert taken(Batcher(3, 10**6, 5.0), [spec("x", task="img2img")]) == [["x"]]


def test_queued_compatible_jobs_run_as_one_batch_with_the_bytes_they_get_alone(engine):
    under = engine()
    endpoint = under.deploy()
    under.submit(endpoint, "busy", steps=4)
    under.wait_worker_of("busy")  # the next jobs queue up behind it
    jobs = {"a": {"seed": 1}, "b": {"seed": 2, "prompt": "a blue bird", "cfg_scale": 4}, "cancelled": {"seed": 3}}
    for name, payload in jobs.items():
        under.submit(endpoint, name, steps=STEPS, **payload)
    under.submit(endpoint, "odd", steps=2, width=96)
    under.events.wait_for("job_progress", "cancelled")
    under.engine.cancel("cancelled")  # one job of the batch: the others go on
    ends = {name: under.events.finished(name) for name in (*jobs, "odd")}
    assert ends["cancelled"][0] == "job_cancelled" and ends["cancelled"][2] < STEPS, ends["cancelled"]
    assert [ends[n][0] for n in ("a", "b", "odd")] == ["job_succeeded"] * 3, ends
    assert [ends[n][2]["worker"].get("batch") for n in ("a", "b", "odd")] == [3, 3, None]  # odd's size: alone
    for name in ("a", "b"):
        under.submit(endpoint, f"{name}-alone", steps=STEPS, **jobs[name])
        alone = under.events.finished(f"{name}-alone")
        assert alone[2]["images"] == ends[name][2]["images"], name
        assert "batch" not in alone[2]["worker"]
