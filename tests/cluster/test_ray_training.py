"""Trainings on the Ray engine: a tiny SD 1.5-style LoRA trained by a Ray actor, and a stop that reaches
the actor from another API replica's engine. The same events as the local runner (tests/trainings)."""

from __future__ import annotations

import json
import time

import pytest

from openesd.execution.base import TrainingSpec
from openesd.storage import open_store
from openesd.trainings.kohya import merged
from tests.cluster.conftest import EVENT_WAIT_S, MODEL_KEY
from tests.datasets.conftest import kohya_files
from tests.trainings.conftest import TINY

# A first step needs the actor's imports and model load: 9 s alone, over 120 s once seen on two busy cores.
FIRST_STEP_S = 3 * EVENT_WAIT_S
pytestmark = [pytest.mark.ray, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def training(engine, training_id: str, epochs: int) -> TrainingSpec:
    """A training of `sks_cat` on two captioned images (two repeats: 4 steps an epoch), its dataset stored."""
    settings = engine.engine._settings
    store = open_store(settings.resolved_object_store_url, settings)
    for name, data in kohya_files(2).items():
        store.put_bytes(f"dataset/cats/2_cat/{name}", data)
    config = merged(
        "sd_1_5",
        {
            "saving_arguments": {"output_name": "sks_cat", "save_every_n_epochs": 1},
            "training_arguments": {"max_train_epochs": epochs},
            **TINY,
        },
    )
    return TrainingSpec(
        id=training_id,
        instance_type="ml.g5.2xlarge",
        model_type="sd_1_5",
        model={"id": "tiny", "model_name": "tiny-sd15.safetensors", "key": MODEL_KEY},
        dataset_prefix="dataset/cats/",
        config=config,
        output_prefix=f"kohya/train/{training_id}/output",
        checkpoint_folder=f"Lora/checkpoint/custom/{training_id}",
    )


def ended(events, training_id: str) -> list[tuple]:
    kinds = ("training_completed", "training_failed", "training_stopped")
    return [c for c in events.calls if c[0] in kinds and c[1] == training_id]


def actor_of(training_id: str):
    import ray

    from openesd.execution._ray_training import NAMESPACE, actor_name

    try:
        return ray.get_actor(actor_name(training_id), namespace=NAMESPACE)
    except ValueError:
        return None


def wait_actor_gone(training_id: str) -> None:
    deadline = time.monotonic() + 30
    while actor_of(training_id) is not None:
        assert time.monotonic() < deadline, "the training's actor still holds its resources"
        time.sleep(0.2)


def test_a_training_runs_as_a_ray_actor_and_stores_its_lora(engine):
    tested = engine()
    spec = training(tested, "t-done", epochs=1)
    tested.engine.submit_training(spec)
    assert actor_of(spec.id) is not None  # in a Ray actor, not a process beside the engine

    done = tested.events.wait_for("training_completed", spec.id)[0][1]
    assert [s[1] for s in tested.events.of("training_status", spec.id)] == ["Downloading", "Training", "Uploading"]
    steps = [p[1]["step"] for p in tested.events.of("training_progress", spec.id)]
    assert steps == sorted(steps) and steps[-1] == 4 and done["steps"] == 4
    assert done["files"] == ["sks_cat.safetensors"] and len(done["hashes"]["sks_cat.safetensors"]) == 64
    assert ended(tested.events, spec.id) == [("training_completed", spec.id, done)]
    store = open_store(tested.engine._settings.resolved_object_store_url, tested.engine._settings)
    stored = store.get_bytes(f"{spec.checkpoint_folder}/sks_cat.safetensors")
    assert stored == store.get_bytes(f"{spec.output_prefix}/sks_cat.safetensors")
    header = json.loads(stored[8 : 8 + int.from_bytes(stored[:8], "little")])  # a safetensors file of LoRA weights
    assert any("lora" in key for key in header)
    wait_actor_gone(spec.id)
    assert tested.engine._trainings.running() == []


def test_a_stop_sent_to_another_api_replica_ends_the_training_actor(engine):
    owner, other = engine(), engine()
    spec = training(owner, "t-stop", epochs=500)
    owner.engine.submit_training(spec)
    owner.events.wait_for("training_progress", spec.id, timeout=FIRST_STEP_S)  # training steps, in the actor

    other.engine.stop_training(spec.id)  # the replica that does not hold it finds the actor by name
    owner.events.wait_for("training_stopped", spec.id, timeout=EVENT_WAIT_S)
    assert ended(owner.events, spec.id) == [("training_stopped", spec.id)]
    assert other.events.of("training_stopped") == []  # reported once, by the replica that runs it
    wait_actor_gone(spec.id)

    other.engine.stop_training("t-unknown")  # running nowhere: the row may say Stopped at once
    other.events.wait_for("training_stopped", "t-unknown")


def test_closing_the_engine_ends_its_training_actors_and_says_why(engine):
    from openesd.execution.training_runner import SHUTDOWN_MESSAGE

    tested = engine()
    spec = training(tested, "t-shutdown", epochs=500)
    tested.engine.submit_training(spec)
    tested.events.wait_for("training_progress", spec.id, timeout=FIRST_STEP_S)

    tested.engine.close()  # an API replica shutting down: its trainings end with it
    tested.events.wait_for("training_failed", spec.id)
    assert ended(tested.events, spec.id) == [("training_failed", spec.id, SHUTDOWN_MESSAGE)]
    wait_actor_gone(spec.id)
