"""The gateway stages of esd-api.md §1: route, API key, body model, identity, permission."""

from __future__ import annotations

import pytest

GATEWAY_KEYS = {"message"}


@pytest.mark.parametrize("path", ["/ping", "/prod/ping"])
def test_ping_answers_pong_at_root_and_under_the_stage(esd, path):
    response = esd.get(path)
    assert response.status_code == 200
    assert response.json() == {"statusCode": 200, "message": "pong"}
    assert response.headers["x-api-version"] == "1.5.0"
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("key", [None, "wrong-key-0000000000", ""])
def test_missing_or_wrong_key_is_forbidden_without_handler_headers(esd, key):
    response = esd.get("/prod/ping", key=key)
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    assert "x-api-version" not in response.headers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/prod/nothing-here"),
        ("GET", "/prod/"),
        ("PATCH", "/prod/roles"),
        ("GET", "/prod/inference"),
        ("PUT", "/prod/ping"),
    ],  # test-connection is a legacy route now (tests/legacy)
)
@pytest.mark.parametrize("key", [None, "0123456789abcdefABCD"])
def test_unmapped_route_is_missing_authentication_token_even_without_key(esd, method, path, key):
    response = esd.call(method, path, key=key)
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_preflight_needs_no_key_and_allows_the_username_header(esd):
    response = esd.call("OPTIONS", "/prod/roles", key=None)
    assert response.status_code == 204
    assert "username" in response.headers["access-control-allow-headers"]
    assert "DELETE" in response.headers["access-control-allow-methods"]


def test_bad_body_without_key_is_forbidden_before_validation(esd):
    response = esd.delete("/prod/users", key=None, json={})
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_bad_body_with_key_but_no_identity_is_a_validation_error(esd):
    response = esd.delete("/prod/users", json={})
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": '[object has missing required properties (["user_name_list"])]',
    }


def test_empty_string_in_list_reports_required_minimum(esd):
    response = esd.delete("/prod/users", json={"user_name_list": [""]}, user="api")
    assert response.status_code == 400
    assert "required minimum: 1" in response.json()["message"]
    assert response.json()["message"].startswith('[string "" is too short')


def test_good_body_without_identity_is_unauthorized(esd):
    response = esd.delete("/prod/users", json={"user_name_list": ["x"]})
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Unauthorized"}


def test_several_schema_errors_are_listed_together(esd):
    response = esd.post("/prod/roles", user="api", json={"role_name": "", "permissions": "x"})
    message = response.json()["message"]
    assert response.status_code == 400
    assert 'string "" is too short (length: 0, required minimum: 1)' in message
    assert 'instance type (string) does not match any allowed primitive type (allowed: ["array"])' in message


def test_too_many_items_message(esd):
    permissions = [f"train:a{i}" for i in range(21)]
    response = esd.post("/prod/roles", user="api", json={"role_name": "r", "permissions": permissions})
    assert response.status_code == 400
    assert "array is too long: must have at most 20 elements but instance has 21 elements" in response.json()["message"]


def test_unparsable_json_is_a_400_not_a_500(esd):
    response = esd.call(
        "POST", "/prod/roles", user="api", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("[Unable to parse request body as JSON")


def test_missing_content_type_is_read_as_json(esd):
    response = esd.call("POST", "/prod/roles", user="api", content=b'{"role_name": "r1", "permissions": ["train:all"]}')
    assert response.status_code == 201


def test_unknown_body_keys_are_ignored(esd):
    response = esd.post(
        "/prod/roles", user="api", json={"role_name": "r1", "permissions": ["train:all"], "colour": "blue"}
    )
    assert response.status_code == 201


def test_hex_bearer_identifies_the_user_as_in_esd_1_4(esd):
    response = esd.get("/prod/roles", headers={"Authorization": "Bearer " + "api".encode().hex().upper()})
    assert response.status_code == 200


def test_lower_case_hex_bearer_is_rejected_with_the_decoder_message(esd):
    response = esd.get("/prod/roles", headers={"Authorization": "Bearer 617069"})
    assert response.status_code == 200  # digits only: valid upper-case hex too
    response = esd.get("/prod/roles", headers={"Authorization": "Bearer 61646d696e"})
    assert response.status_code == 400
    assert response.json()["message"] == "Non-base16 digit found"


def test_username_header_is_case_insensitive(esd):
    response = esd.get("/prod/roles", headers={"UserName": "api"})
    assert response.status_code == 200


def test_204_has_an_empty_body(esd):
    response = esd.delete("/prod/roles", json={"role_name_list": ["nothing"]})
    assert response.status_code == 204
    assert response.content == b""


def test_openapi_and_docs_are_served_without_a_key(esd):
    assert esd.get("/openapi.json", key=None).status_code == 200
    assert esd.get("/docs", key=None).status_code == 200
    assert esd.get("/healthz", key=None).json() == {"status": "ok"}
