"""The engine contract for model merges: a merge runs in the engine's worker (a process, a Ray task), stores
its output and reports one MergeSucceeded or MergeFailed that the legacy layer writes to the checkpoint."""

from __future__ import annotations

import hashlib

import pytest

from openesd.execution.base import MergeSpec
from openesd.storage import open_store

torch = pytest.importorskip("torch")
from safetensors.torch import load, save  # noqa: E402

W = "model.diffusion_model.w"


def merge(tested, checkpoint_id: str, secondary: bool = True) -> tuple[MergeSpec, object]:
    """A weighted sum (0.25) of two stored one-tensor models into `out/<checkpoint_id>.safetensors`, and the store."""
    settings = tested.engine._settings
    store = open_store(settings.resolved_object_store_url, settings)
    for name, value in (("a", 1.0), ("b", 3.0)):
        store.put_bytes(f"models/{name}.safetensors", save({W: torch.full((2, 2), value)}))
    return MergeSpec(
        checkpoint_id=checkpoint_id,
        output_key=f"out/{checkpoint_id}.safetensors",
        primary_key="models/a.safetensors",
        secondary_key="models/b.safetensors" if secondary else None,
        tertiary_key=None,
        vae_key=None,
        interp_method="Weighted sum",
        multiplier=0.25,
        save_as_half=False,
        discard_weights="",
        metadata={},
    ), store


def test_a_merge_stores_its_output_and_reports_the_files_hash(engine):
    tested = engine()
    spec, store = merge(tested, "m-done")
    tested.engine.submit_merge(spec)
    ((_, key, sha256),) = tested.events.wait_for("merge_succeeded", spec.checkpoint_id)
    stored = store.get_bytes(key)
    assert key == spec.output_key and sha256 == hashlib.sha256(stored).hexdigest()
    assert torch.allclose(load(stored)[W], torch.full((2, 2), 1.5))
    assert tested.events.of("merge_failed") == []


def test_a_merge_that_cannot_run_fails_with_the_reason_and_stores_nothing(engine):
    tested = engine()
    spec, store = merge(tested, "m-failed", secondary=False)
    tested.engine.submit_merge(spec)
    assert tested.events.wait_for("merge_failed", spec.checkpoint_id) == [
        (spec.checkpoint_id, "Failed: Missing Secondary Model")
    ]
    assert store.stat(spec.output_key) is None
