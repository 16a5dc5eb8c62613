"""The Jobs page in a real browser: a user's jobs newest first, filtered by status, as a gallery, and deleted."""

from __future__ import annotations

import json
import time

from tests.console.conftest import ADMIN, ADMIN_PASSWORD, MEMBER_ROLE, screenshot, sign_in_with_token


def _body(model: str, endpoint: str) -> dict:
    return {
        "task_type": "txt2img",
        "inference_type": "Async",
        "models": {"Stable-diffusion": [model]},
        "sagemaker_endpoint_name": endpoint,
    }


def _created_job(console_server, token: str, model: str, endpoint: str) -> str:
    """A job created and never started (no worker time): it stays `created`."""
    created = console_server.api("POST", "/inferences", token, json=_body(model, endpoint))
    assert created.status_code == 201, created.text
    return created.json()["data"]["inference"]["id"]


def _finished_job(console_server, token: str, model: str, endpoint: str) -> str:
    """A txt2img job run to its end through the API, as a script makes one; returns its id."""
    payload = {"prompt": "a job", "steps": 2, "width": 64, "height": 64, "seed": 7, "sampler_name": "Euler"}
    body = _body(model, endpoint) | {"payload_string": json.dumps(payload)}
    started = console_server.api("POST", "/inferences", token, json=body)
    assert started.status_code == 202, started.text
    job_id = started.json()["data"]["inference"]["inference_id"]
    deadline = time.monotonic() + 120  # the session's first job may load the model
    while time.monotonic() < deadline:
        status = console_server.api("GET", f"/inferences/{job_id}", token).json()["data"]["status"]
        if status not in ("created", "inprogress"):
            assert status == "succeed", status
            return job_id
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


def test_the_jobs_page_lists_filters_shows_images_and_deletes(page, console_server, tiny_model, endpoint):
    token = console_server.token(ADMIN, ADMIN_PASSWORD)
    older = _created_job(console_server, token, tiny_model, endpoint)
    newer = _finished_job(console_server, token, tiny_model, endpoint)
    sign_in_with_token(page, token, "jobs")
    rows = page.locator("#job-list tbody tr")
    rows.first.wait_for()
    ids = [button.get_attribute("data-id") for button in page.locator("#job-list .delete-job").all()]
    assert ids.index(newer) < ids.index(older)  # newest first
    assert page.locator(f"#job-list tr:has([data-id='{newer}']) img.thumb").count() == 1
    page.select_option("#jobs-filters select[name=status]", "created")
    page.wait_for_selector(f"#job-list:not(:has([data-id='{newer}']))")  # the server filtered it out
    assert page.locator(f"[data-id='{older}']").count() == 1
    page.select_option("#jobs-filters select[name=status]", "succeed")
    page.select_option("#jobs-filters select[name=view]", "gallery")
    page.wait_for_selector("#job-gallery figure img")
    screenshot(page, "jobs-gallery")
    page.select_option("#jobs-filters select[name=status]", "")
    page.select_option("#jobs-filters select[name=view]", "table")
    page.wait_for_selector(f"[data-id='{older}']")
    screenshot(page, "jobs")
    page.click(f"#job-list tr:has([data-id='{newer}']) a:text('Open')")  # the finished job on the Generate page
    page.wait_for_selector("#job-results .result-image")
    assert "Seed: 7" in page.inner_text("#job-results .infotext")
    page.go_back()
    page.wait_for_selector(f"[data-id='{newer}']")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"[data-id='{newer}']")
    page.wait_for_selector(f"#job-list:not(:has([data-id='{newer}']))")
    assert page.locator(f"[data-id='{older}']").count() == 1
    assert console_server.api("GET", f"/inferences/{newer}", token).status_code == 404
    # one server page at a time: ten newer jobs fill page 1, the older one is on page 2
    for _ in range(10):
        _created_job(console_server, token, tiny_model, endpoint)
    page.select_option("#jobs-filters select[name=limit]", "10")
    page.wait_for_selector(f"#job-list:not(:has([data-id='{older}']))")
    assert page.locator("#job-list tbody tr").count() == 10 and page.is_disabled("#jobs-previous")
    page.click("#jobs-next")
    page.wait_for_selector(f"[data-id='{older}']")
    page.click("#jobs-previous")
    page.wait_for_selector(f"#job-list:not(:has([data-id='{older}']))")


def test_a_member_without_inference_all_follows_their_jobs_but_is_not_offered_delete(page, console_server, endpoint):
    token = console_server.make_user("jobs-member", "member-pw-1", [MEMBER_ROLE])
    body = {"task_type": "txt2img", "inference_type": "Async", "models": {}, "sagemaker_endpoint_name": endpoint}
    created = console_server.api("POST", "/inferences", token, json=body)
    assert created.status_code == 201, created.text
    mine = created.json()["data"]["inference"]["id"]
    assert console_server.api("GET", f"/inferences/{mine}", token).json()["data"]["InferenceJobId"] == mine
    sign_in_with_token(page, token, "jobs")
    page.wait_for_selector("#job-list td:text('jobs-member')")
    assert page.locator("#job-list .delete-job").count() == 0
    assert console_server.api("GET", "/inferences", token).json()["data"]["inferences"][0]["InferenceJobId"] == mine
