"""`/progress` follows the caller's running job (steps, ETA, the live preview as `current_image`) and
`/interrupt` is its cancel: the WebUI call then answers 200 without images, the job ends `cancelled`."""

from __future__ import annotations

import base64
import io
import threading
import time

from PIL import Image

from tests.sdapi.conftest import WebUIServer

PROGRESS_WAIT_S = 60


def test_progress_shows_the_running_job_with_its_preview_and_interrupt_cancels_it(webui: WebUIServer):
    api = webui.client("carol")
    api.set_options({"show_progress_every_n_steps": 2})
    assert api.get_progress()["state"]["job_count"] == 0
    answers: list = []
    long_job = threading.Thread(
        target=lambda: answers.append(api.txt2img(prompt="slow", width=64, height=64, steps=150, n_iter=20))
    )
    long_job.start()
    try:
        seen = _progress_with_preview(api)
    finally:
        api.interrupt()
        long_job.join(PROGRESS_WAIT_S)

    assert 0 < seen["progress"] < 1 and seen["state"]["sampling_steps"] > 0 and seen["state"]["job"]
    preview = Image.open(io.BytesIO(base64.b64decode(seen["current_image"])))
    assert preview.format == "JPEG" and min(preview.size) >= 8  # the worker's live preview of the latents
    assert answers[0].images == [] and answers[0].info["interrupted"] is True
    job = webui.esd.get(f"/prod/inferences/{seen['state']['job']}", user="api").json()["data"]
    assert (job["status"], job["cancelled_by"]) == ("cancelled", "carol")
    assert api.get_progress()["progress"] == 0.0  # nothing runs any more


def _progress_with_preview(api) -> dict:
    deadline = time.monotonic() + PROGRESS_WAIT_S
    while time.monotonic() < deadline:
        seen = api.get_progress()
        if seen["progress"] > 0 and seen["current_image"]:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"no progress with a preview within {PROGRESS_WAIT_S} s: {seen}")
