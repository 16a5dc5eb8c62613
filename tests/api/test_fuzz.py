"""Schemathesis over the served `/openapi.json`: no generated request may get a 5xx (issue 13).

Every operation of the document (1.5.0 at the root and under `/prod`, legacy on every mount) is
called in-process with the API key and the seeded `api` user, so the handlers are reached, not only
the gateway. Workers never start: the engine is `NoWorkerEngine`. One route is left out:
`GET /inference/get-inference-job` answers 500 for a missing or unknown `jobID`, as the legacy
contract requires (esd-legacy-api.md §4.3). The WebUI surface (`/sdapi/v1`, `/rembg`) takes no API key
but a personal token: its operations are called with the token of an administrator, so they too reach
their handlers (with no endpoint InService, a generation stops at its 4xx before any wait).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from fastapi.testclient import TestClient

from openesd.server.app import create_app
from tests.api.conftest import API_KEY, ESDClient, make_settings

AUTH = {"x-api-key": API_KEY, "username": "api"}
# Bounded so both backends run in about a minute each; OPENESD_FUZZ_EXAMPLES raises it for a longer hunt.
EXAMPLES_PER_OPERATION = int(os.environ.get("OPENESD_FUZZ_EXAMPLES", "8"))
DERANDOMIZE = "OPENESD_FUZZ_EXAMPLES" not in os.environ  # the suite replays the same cases every run
LEGACY_500_BY_CONTRACT = r"/inference/get-inference-job$"
# The WebUI surface takes HTTP Basic or a token, not the API key and `username` header: it is fuzzed on its own,
# with a token (test_no_generated_webui_request_answers_5xx).
WEBUI_SURFACE = r"^/(sdapi/|rembg|internal/)"
# A user's event stream never ends by itself: every generated case waited out the client's timeout (80 s per
# backend and mount). Its query is tested in tests/inferences/test_events.py.
ENDLESS_STREAM = r"^(/prod)?/events$"


def _operation_labels(webui: bool = False) -> list[tuple[str, str]]:
    """(method, path) of every operation served, read at collection from an app that is not started: the
    ESD surface, or with `webui` only the WebUI surface."""
    with tempfile.TemporaryDirectory() as data:
        document = create_app(make_settings(Path(data))).openapi()
    loaded = schemathesis.openapi.from_dict(document)
    if webui:
        loaded = loaded.include(path_regex=WEBUI_SURFACE)
    else:
        loaded = loaded.exclude(path_regex=LEGACY_500_BY_CONTRACT).exclude(path_regex=WEBUI_SURFACE)
    operations = (result.ok() for result in loaded.exclude(path_regex=ENDLESS_STREAM).get_all_operations())
    return [(operation.method.upper(), operation.path) for operation in operations]


@pytest.fixture(scope="module")
def api_schema(module_app):
    """The document as served, with calls going in-process through the ASGI transport."""
    return schemathesis.openapi.from_asgi("/openapi.json", module_app)


@pytest.fixture(scope="module")
def webui_auth(module_app) -> dict[str, str]:
    """A personal token of an administrator, as a WebUI client sends it."""
    esd = ESDClient(TestClient(module_app))  # the module's app is started already: no second lifespan
    created = esd.post(
        "/prod/users", user="api", json={"username": "fuzz", "password": "fuzz-pw", "roles": ["IT Operator"]}
    )
    assert created.status_code == 201, created.json()
    login = esd.post("/prod/tokens", json={"username": "fuzz", "password": "fuzz-pw"})
    assert login.status_code == 201, login.json()
    return {"Authorization": f"Bearer {login.json()['data']['secret']}"}


@pytest.mark.parametrize("operation", [" ".join(label) for label in _operation_labels()])
def test_no_generated_request_answers_5xx(api_schema, operation):
    _fuzz(api_schema, operation, AUTH)


@pytest.mark.parametrize("operation", [" ".join(label) for label in _operation_labels(webui=True)])
def test_no_generated_webui_request_answers_5xx(api_schema, webui_auth, operation):
    _fuzz(api_schema, operation, webui_auth)


def _fuzz(api_schema, operation: str, auth: dict[str, str]) -> None:
    method, path = operation.split(" ")
    operation = api_schema[path][method]

    # Valid and invalid requests alike: legacy bodies reach their handlers unchecked by any gateway stage.
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def call(case):
        response = case.call(headers=auth)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} answered {response.status_code}: {response.text[:500]}\n"
            f"query={case.query} body={case.body!r:.500}"
        )

    call()
