"""Who may call the WebUI API: HTTP Basic with an OpenESD user's password or a personal token; the ESD
permissions; A1111's error body and FastAPI's 422; the setting that turns the surface off."""

from __future__ import annotations

import httpx
import pytest

from tests.checkpoints.conftest import upload_file
from tests.sdapi.conftest import PASSWORD, WebUIServer
from tests.support.esd_jobs import create_endpoint
from tests.support.model_files import model_file_bytes
from tests.support.no_worker_engine import without_workers


def test_without_credentials_or_with_a_wrong_password_or_token_it_is_401_with_the_basic_challenge(webui: WebUIServer):
    answers = [
        httpx.get(f"{webui.sdapi}/sd-models"),
        httpx.get(f"{webui.sdapi}/sd-models", auth=("alice", "wrong")),
        httpx.get(f"{webui.sdapi}/sd-models", auth=("nobody", PASSWORD)),
        httpx.get(f"{webui.sdapi}/sd-models", headers={"Authorization": "Bearer oesd_not-a-token"}),
        httpx.get(f"{webui.sdapi}/sd-models", headers={"x-api-key": "0123456789abcdefABCD", "username": "alice"}),
    ]

    assert [a.status_code for a in answers] == [401] * 5
    assert all(a.headers["WWW-Authenticate"].startswith("Basic") for a in answers)
    assert set(answers[1].json()) == {"error", "detail", "body", "errors"}
    assert "wrong user name or password" in answers[1].json()["errors"]


def test_basic_guesses_are_throttled_in_compat_mode_too(webui: WebUIServer):
    """No API key guards the WebUI API, so the login throttle counts its wrong passwords in either mode."""
    guesses = [httpx.get(f"{webui.sdapi}/samplers", auth=("mallory", f"guess{n}")).status_code for n in range(6)]

    assert guesses == [401] * 5 + [429]


def test_a_user_without_inference_create_may_list_but_not_generate_or_interrupt(webui: WebUIServer):
    bob = ("bob", PASSWORD)

    listed = httpx.get(f"{webui.sdapi}/sd-models", auth=bob)
    assert httpx.get(f"{webui.base}/internal/ping", auth=bob).json() == {}
    refused = httpx.post(f"{webui.sdapi}/txt2img", auth=bob, json={"prompt": "x", "steps": 2})
    interrupt = httpx.post(f"{webui.sdapi}/interrupt", auth=bob)

    assert listed.status_code == 200 and listed.json()[0]["filename"] == "tiny-sd15.safetensors"
    assert (refused.status_code, interrupt.status_code) == (403, 403)
    assert "inference:create" in refused.json()["errors"]
    jobs = webui.esd.get("/prod/inferences", user="api", params={"type": "txt2img", "username": "bob"})
    assert not [j for j in jobs.json()["data"]["inferences"] if j["owner_group_or_role"] == ["bob"]]


def test_a_webui_route_openesd_does_not_serve_is_a_404_naming_it(webui: WebUIServer):
    answer = httpx.post(f"{webui.sdapi}/interrogate", auth=("alice", PASSWORD), json={"image": "x"})

    assert answer.status_code == 404
    assert answer.json()["errors"].startswith("/sdapi/v1/interrogate is not served by OpenESD")


def test_a_body_that_does_not_validate_is_fastapis_422_detail_list(webui: WebUIServer):
    answer = httpx.post(f"{webui.sdapi}/txt2img", auth=("alice", PASSWORD), json={"steps": "many"})

    assert answer.status_code == 422
    assert [(d["loc"], d["type"]) for d in answer.json()["detail"]] == [(["body", "steps"], "int_parsing")]


def test_a_job_the_worker_refuses_is_a1111s_error_body_naming_the_value(webui: WebUIServer):
    alice = ("alice", PASSWORD)
    body = {"prompt": "x", "steps": 2, "width": 64, "height": 64}

    sampler = httpx.post(f"{webui.sdapi}/txt2img", auth=alice, json=body | {"sampler_name": "Euler z"}, timeout=60)
    model = httpx.post(
        f"{webui.sdapi}/txt2img", auth=alice, json=body | {"override_settings": {"sd_model_checkpoint": "nope"}}
    )

    assert sampler.status_code == 400 and "Euler z" in sampler.json()["errors"]
    assert model.status_code == 400 and set(model.json()) == {"error", "detail", "body", "errors"}
    assert "'nope'" in model.json()["errors"] and "tiny-sd15.safetensors" in model.json()["errors"]


@pytest.fixture
def turned_off(make_client):
    return make_client(sdapi_enabled=False)


@pytest.fixture
def async_only(make_client):
    """An app whose only endpoint is Async and whose jobs never run (no worker); real-time waits 0.5 s."""
    esd = make_client(realtime_timeout_s=0.5)
    esd.engine = without_workers(esd, ready=True)
    upload_file(esd, "model.safetensors", model_file_bytes(), 1, "Stable-diffusion")
    esd.post("/prod/users", user="api", json={"username": "alice", "password": PASSWORD, "roles": ["IT Operator"]})
    assert create_endpoint(esd, endpoint_name="queue")["endpoint_status"] == "InService"
    return esd


def test_without_a_real_time_endpoint_the_call_queues_on_an_async_one_and_waits(async_only):
    answer = async_only.http.post("/sdapi/v1/txt2img", auth=("alice", PASSWORD), json={"prompt": "x", "steps": 2})

    assert answer.status_code == 504 and answer.json()["error"] == "GatewayTimeout"
    job = async_only.engine.submitted[0]
    assert f"inference job {job.id} goes on" in answer.json()["errors"]
    assert job.task == "txt2img"
    assert [m["model_name"] for m in job.models["Stable-diffusion"]] == ["model.safetensors"]
    view = async_only.get(f"/prod/inferences/{job.id}", user="api").json()["data"]
    assert (view["inference_type"], view["status"], view["owner_group_or_role"]) == ("Async", "inprogress", ["alice"])

    # the files a payload names reach the job's models: LoRA tags, ControlNet units, the refiner checkpoint
    for name, kind, file_kind in (
        ("style.safetensors", "Lora", "lora"),
        ("canny.safetensors", "ControlNet", "controlnet"),
    ):
        upload_file(async_only, name, model_file_bytes(file_kind), 1, kind)
    upload_file(async_only, "refiner.safetensors", model_file_bytes(salt="refiner"), 1, "Stable-diffusion")
    scripts = {
        "ControlNet": {"args": [{"enabled": True, "model": "canny [0123abcd]"}, {"enabled": False, "model": "x"}]},
        "Refiner": {"args": [True, "refiner", 0.8]},
    }
    body = {"prompt": "<lora:style:0.5> a cat", "alwayson_scripts": scripts}
    body["override_settings"] = {"sd_model_checkpoint": "model"}  # the newest (refiner) would be the default
    assert async_only.http.post("/sdapi/v1/txt2img", auth=("alice", PASSWORD), json=body).status_code == 504
    named = {kind: [m["model_name"] for m in files] for kind, files in async_only.engine.submitted[-1].models.items()}
    assert named["Lora"] == ["style.safetensors"] and named["ControlNet"] == ["canny.safetensors"]
    assert sorted(named["Stable-diffusion"]) == ["model.safetensors", "refiner.safetensors"]

    # a user whose roles no endpoint serves is told so by name, and nothing is queued
    async_only.post("/prod/users", user="api", json={"username": "eve", "password": PASSWORD, "roles": ["byoc"]})
    refused = async_only.http.post("/sdapi/v1/txt2img", auth=("eve", PASSWORD), json={"prompt": "x"})
    assert refused.status_code == 400
    assert refused.json()["errors"] == 'no InService Real-time or Async endpoint is open to user "eve"'
    assert len(async_only.engine.submitted) == 2


def test_the_setting_turns_the_whole_surface_off_with_404(turned_off):
    answers = [
        turned_off.http.get("/sdapi/v1/sd-models", auth=("api", "x")),
        turned_off.http.post("/sdapi/v1/txt2img", json={}),
        turned_off.http.post("/rembg", json={}),
    ]

    assert [a.status_code for a in answers] == [404, 404, 404]
    assert "OPENESD_SDAPI_ENABLED" in answers[0].json()["detail"]


def test_in_strict_mode_basic_checks_the_argon2_password_under_the_login_throttle(make_client):
    esd = make_client(auth_mode="strict", login_max_failures=2, login_lockout_s=60.0)
    assert esd.post("/prod/users", json={"username": "root", "password": PASSWORD, "initial": True}).status_code == 201

    good = esd.http.get("/sdapi/v1/samplers", auth=("root", PASSWORD))
    wrong = [esd.http.get("/sdapi/v1/samplers", auth=("root", "guess")).status_code for _ in range(2)]
    locked = esd.http.get("/sdapi/v1/samplers", auth=("root", PASSWORD))

    assert good.status_code == 200 and "Euler a" in [s["name"] for s in good.json()]
    assert wrong == [401, 401]
    assert locked.status_code == 429 and locked.headers["Retry-After"]
    assert "too many failed logins for this user name" in locked.json()["errors"]
