"""`GET /trainings/{id}/events`: a training's reports become queued → scheduled → step → succeeded / failed."""

from __future__ import annotations

import json

from openesd.trainings import reporter as reporter_module
from openesd.trainings.reporter import TrainingReporter
from tests.trainings.conftest import training_body


def events(esd, training_id: str, **headers) -> list[tuple[str, dict]]:
    answer = esd.get(f"/prod/trainings/{training_id}/events", user="api", headers=headers)
    assert answer.status_code == 200, answer.text
    frames = [dict(line.split(": ", 1) for line in b.splitlines() if ": " in line) for b in answer.text.split("\n\n")]
    return [(f["event"], json.loads(f["data"])) for f in frames if "event" in f]


def test_a_training_streams_its_phases_steps_and_end(trainer, monkeypatch):
    monkeypatch.setattr(reporter_module, "PROGRESS_WRITE_EVERY_S", 0.0)
    tid = trainer.post("/prod/trainings", user="api", json=training_body()).json()["data"]["id"]
    reporter = TrainingReporter(trainer.http.app.state.sessionmaker, trainer.http.app.state.store)
    reporter.training_status(tid, "Downloading")
    reporter.training_status(tid, "Training")
    for step in (1, 2):
        reporter.training_progress(tid, {"step": step, "total_steps": 2, "loss": 0.5 / step, "eta_seconds": 2 - step})
    reporter.training_completed(tid, {"files": ["sks_cat.safetensors"], "hashes": {}})
    found = events(trainer, tid)
    assert [kind for kind, _ in found] == ["queued", "scheduled", "phase", "step", "step", "succeeded"]
    assert [(d["step"], d["total"], d["loss"]) for k, d in found if k == "step"] == [(1, 2, 0.5), (2, 2, 0.25)]
    assert found[-1][1]["files"] == ["sks_cat.safetensors"] and found[-1][1]["checkpoint_id"] == tid


def test_a_failed_or_stopped_training_ends_its_stream_with_the_reason(trainer):
    reporter = TrainingReporter(trainer.http.app.state.sessionmaker, trainer.http.app.state.store)
    failed = trainer.post("/prod/trainings", user="api", json=training_body("one")).json()["data"]["id"]
    reporter.training_failed(failed, "out of memory")
    assert events(trainer, failed)[-1] == ("failed", events(trainer, failed)[-1][1])
    assert events(trainer, failed)[-1][1]["message"] == "out of memory"
    stopped = trainer.post("/prod/trainings", user="api", json=training_body("two")).json()["data"]["id"]
    reporter.training_stopped(stopped)
    assert events(trainer, stopped)[-1][0] == "cancelled"
    assert trainer.get("/prod/trainings/nope/events", user="api").status_code == 404
