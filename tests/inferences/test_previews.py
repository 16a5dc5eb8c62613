"""Live previews on the server: `preview_every` of POST /inferences reaches the worker's JobSpec, a reported
preview is stored under the job's output prefix and shown as `progress.preview_url` while the job runs, and
goes with the job. The engine runs nothing: the tests report what a worker would, through the real reporter
(the worker's side: tests/generation/test_previews.py)."""

from __future__ import annotations

import pytest

from tests.checkpoints.conftest import get_url
from tests.inferences.test_rules import create, created, esd, message  # noqa: F401  (shared fixture)

JPEG = b"\xff\xd8\xff\xe0 a preview \xff\xd9"


def view(esd, job_id: str) -> dict:
    return esd.get(f"/prod/inferences/{job_id}").json()["data"]


def test_a_reported_preview_is_served_while_the_job_runs_and_deleted_with_it(esd):
    job_id = created(esd, payload_string="{}", preview_every=2)
    (spec,) = esd.engine.submitted
    assert spec.preview_every == 2
    reporter = esd.engine.reporter
    reporter.job_started(job_id, 0)
    reporter.job_progress(job_id, 1, 4)
    assert "preview_url" not in view(esd, job_id)["progress"]  # none reported yet
    reporter.job_progress(job_id, 2, 4, JPEG)
    progress = view(esd, job_id)["progress"]
    assert progress["step"] == 2 and progress["preview_step"] == 2
    assert f"out/{job_id}/preview/latest.jpg" in progress["preview_url"]
    assert get_url(esd, progress["preview_url"]).content == JPEG
    reporter.job_progress(job_id, 4, 4, JPEG + b"2")  # the latest overwrites the last
    url = view(esd, job_id)["progress"]["preview_url"]
    assert get_url(esd, url).content == JPEG + b"2"
    reporter.job_succeeded(job_id, {"images": []})
    assert "progress" not in view(esd, job_id)  # a finished job shows its results, not a preview
    assert esd.delete("/prod/inferences", json={"inference_id_list": [job_id]}).status_code == 204
    assert get_url(esd, url).status_code == 404


def test_a_job_without_the_field_gets_no_previews(esd):
    job_id = created(esd, payload_string="{}")
    (spec,) = esd.engine.submitted
    assert spec.preview_every == 0  # the setting's default: ESD clients see nothing new
    assert "preview_every" not in view(esd, job_id)["params"]
    esd.engine.reporter.job_started(job_id, 0)
    esd.engine.reporter.job_progress(job_id, 1, 4)
    assert "preview_url" not in view(esd, job_id)["progress"]


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True, 1001])
def test_bad_preview_every_is_a_400_naming_it(esd, bad):
    import json

    assert message(create(esd, preview_every=bad)) == (
        f"preview_every must be an integer from 0 (no previews) to 1000 model calls, got {json.dumps(bad)}"
    )
