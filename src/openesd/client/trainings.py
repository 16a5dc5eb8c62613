"""`/trainings` (esd-api.md §10): kohya LoRA trainings, their progress and waiting for them."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable, Iterator

from openesd.client._events import JobEvent, follow, wait
from openesd.client._resource import Resource

DONE = {"Completed"}
FAILED = {"Failed", "Fail", "Stopped"}


def training_body(
    model: str,
    dataset: str,
    output_name: str,
    *,
    fm_type: str = "sd_1_5",
    instance_type: str = "ml.g5.2xlarge",
    epochs: int = 1,
    save_every_n_epochs: int = 1,
    config_params: dict | None = None,
) -> dict:
    """The request shape ESD clients send (§10.2), with extra kohya sections merged in.

    No `max_train_steps`: this shape requires `max_train_epochs`, which kohya lets override the steps.
    """
    config = {
        "saving_arguments": {"output_name": output_name, "save_every_n_epochs": save_every_n_epochs},
        "training_arguments": {"max_train_epochs": epochs},
    }
    for section, values in (config_params or {}).items():
        config.setdefault(section, {}).update(values)
    return {
        "lora_train_type": "kohya",
        "params": {
            "training_params": {
                "training_instance_type": instance_type,
                "model": model,
                "dataset": dataset,
                "fm_type": fm_type,
            },
            "config_params": config,
        },
    }


class Trainings(Resource):
    def list(self, limit: int | None = None) -> list[dict]:
        return list(self._cursor("/trainings", "trainings", {"limit": 50}, limit))

    def get(self, training_id: str) -> dict:
        return self._t.call("GET", f"/trainings/{training_id}")

    def create(self, model: str, dataset: str, output_name: str, **options) -> dict:
        """Start a LoRA training of `model` on `dataset`; options as in `training_body`."""
        return self._t.call("POST", "/trainings", json=training_body(model, dataset, output_name, **options))

    def stop(self, training_id: str) -> dict | None:
        return self._t.call("PUT", f"/trainings/{training_id}/stop")

    def delete(self, training_ids: list[str]) -> None:
        self._t.call("DELETE", "/trainings", json={"training_id_list": list(training_ids)})

    def wait_for(
        self,
        training_id: str,
        *,
        timeout: float = 7200,
        interval: float = 2.0,
        on_update: Callable[[dict], None] | None = None,
    ) -> dict:
        """Follow the training's live events until it ends (polling every `interval` on a server without
        them); `Completed` returns it, `Failed`, `Fail` or `Stopped` raise JobFailed with the reason."""
        return wait(
            self._t,
            f"/trainings/{training_id}/events",
            lambda: self.get(training_id),
            record_of=_training_record,
            done=DONE,
            failed=FAILED,
            state_of=lambda t: t.get("job_status", ""),
            what=f"training {training_id}",
            timeout=timeout,
            interval=interval,
            on_update=on_update,
        )

    def events(self, training_id: str, last_event_id: int | None = None) -> Iterator[JobEvent]:
        """The training's live events from `last_event_id` on, until its terminal event (resumed on a drop)."""
        return follow(self._t, f"/trainings/{training_id}/events", last_event_id)


def _training_record(event: JobEvent) -> dict[str, Any] | None:
    """A training-shaped record for a progress display: phase and step events."""
    if event.kind in ("scheduled", "phase"):
        return {"job_status": event.data.get("phase"), "progress": None}
    if event.kind == "step":
        keys = ("step", "epoch", "total_epochs", "loss", "eta_seconds")
        progress = {key: event.data.get(key) for key in keys} | {"total_steps": event.data.get("total")}
        return {"job_status": "Training", "progress": progress}
    return None
