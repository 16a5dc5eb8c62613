"""Live previews through a real engine: a tiny-model job with `preview_every` sends JPEG previews of its
prediction with its progress reports across the worker process's pipe; a job without it sends none."""

from __future__ import annotations

import io

from tests.execution.conftest import tiny_job


def test_a_job_with_preview_every_reports_previews_and_one_without_none(engine):
    from PIL import Image

    under = engine()
    endpoint = under.deploy()
    under.engine.submit(tiny_job(endpoint.id, "shown", 3, preview_every=1))
    under.engine.submit(tiny_job(endpoint.id, "plain", 3))
    assert under.events.finished("shown")[0] == "job_succeeded"
    assert under.events.finished("plain")[0] == "job_succeeded"
    previews = [(step, total, data) for _, step, total, *data in under.events.of("job_progress", "shown") if data]
    assert [(step, total) for step, total, _ in previews] == [(1, 3), (2, 3), (3, 3)]  # one per model call
    for _, _, (data,) in previews:
        assert Image.open(io.BytesIO(data)).format == "JPEG"
    assert all(len(report) == 3 for report in under.events.of("job_progress", "plain"))  # (job, step, total)
