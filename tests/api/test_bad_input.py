"""Bad input is a 4xx naming what is wrong, never a 500, on every route (issue 13's hand fuzzing):
lone surrogates, NUL, integers that are not integers, deep nesting, oversized bodies, long names."""

from __future__ import annotations

import json

import pytest

# A route per family: 1.5.0 (gateway schema), legacy (no schema), and the body-dispatched /endpoints.
BODIES = [
    ("POST", "/prod/roles", {"role_name": "r", "permissions": ["train:all"]}, "role_name"),
    ("POST", "/prod/users", {"username": "u", "password": "p", "roles": ["IT Operator"]}, "password"),
    (
        "POST",
        "/prod/inferences",
        {"task_type": "txt2img", "inference_type": "Async", "models": {}, "payload_string": "{}"},
        "payload_string",
    ),
    (
        "POST",
        "/prod/datasets",
        {
            "dataset_name": "d",
            "creator": "api",
            "params": {},
            "prefix": "p",
            "content": [{"filename": "a.png", "name": "a", "type": "image", "params": {}}],
        },
        "prefix",
    ),
    (
        "POST",
        "/legacy/dataset",
        {
            "dataset_name": "d",
            "creator": "api",
            "params": {},
            "content": [{"filename": "a.png", "name": "a", "type": "image", "params": {}}],
        },
        "dataset_name",
    ),
    ("POST", "/prod/endpoints", {"instance_type": "ml.g5.xlarge", "initial_instance_count": "1"}, "instance_type"),
    ("POST", "/legacy/inference-api/inference", {"task_type": "txt2img", "prompt": "a cat"}, "prompt"),
]
IDS = [f"{method} {path}" for method, path, _, _ in BODIES]


def send(esd, method: str, path: str, raw: bytes, **headers):
    return esd.call(method, path, user="api", content=raw, headers={"content-type": "application/json", **headers})


def with_raw(body: dict, field: str, raw_json: str) -> bytes:
    return json.dumps({**body, field: "__RAW__"}).replace('"__RAW__"', raw_json).encode()


@pytest.mark.parametrize(("method", "path", "body", "field"), BODIES, ids=IDS)
def test_a_lone_surrogate_is_a_400_naming_the_field(esd, method, path, body, field):
    response = send(esd, method, path, with_raw(body, field, '"x\\ud800y"'))
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": f"[instance.{field} is not valid Unicode: it holds the lone UTF-16 surrogate \\ud800 (at index 1)]",
    }


@pytest.mark.parametrize(
    ("params", "filename", "named"),
    [
        ({}, "a\ud800.png", "instance.content[0].filename is not valid Unicode"),
        ({"x\udfff": 1}, "a.png", 'instance.params key "x\\udfff" is not valid Unicode'),
    ],
)
def test_a_surrogate_deep_inside_or_in_a_key_is_named_by_its_place(esd, params, filename, named):
    body = {
        "dataset_name": "d",
        "creator": "api",
        "params": params,
        "content": [{"filename": filename, "name": "a", "type": "image", "params": {}}],
    }
    response = send(esd, "POST", "/prod/datasets", json.dumps(body).encode())  # dumps writes \udfff escapes
    assert response.status_code == 400
    assert named in response.json()["message"]


@pytest.mark.parametrize(("method", "path", "body", "field"), BODIES, ids=IDS)
def test_nul_in_a_string_is_a_400_naming_the_field(esd, method, path, body, field):
    response = send(esd, method, path, with_raw(body, field, '"a\\u0000b"'))
    assert response.status_code == 400
    assert f"instance.{field} contains the NUL character" in response.json()["message"]


@pytest.mark.parametrize("value", ["1e400", "Infinity", "-Infinity", "1.5", "1.0", "true", '"1"'])
def test_parts_number_must_be_a_json_integer(esd, value):
    raw = (
        '{"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "a.safetensors", '
        f'"parts_number": {value}}}]}}'
    ).encode()
    response = send(esd, "POST", "/prod/checkpoints", raw)
    assert response.status_code == 400
    assert 'does not match any allowed primitive type (allowed: ["integer"])' in response.json()["message"]


def created_checkpoint(esd) -> str:
    created = esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": "a.safetensors", "parts_number": 1}]},
    )
    assert created.status_code == 201, created.json()
    return created.json()["data"]["checkpoint"]["id"]


@pytest.mark.parametrize("value", ["1e400", "Infinity", "1.5", "true", '"1"'])
def test_part_number_in_multi_parts_tags_must_be_an_integer(esd, value):
    checkpoint_id = created_checkpoint(esd)
    raw = (
        f'{{"status": "Active", "multi_parts_tags": {{"a.safetensors": [{{"ETag": "e", "PartNumber": {value}}}]}}}}'
    ).encode()
    response = send(esd, "PUT", f"/prod/checkpoints/{checkpoint_id}", raw)
    assert response.status_code == 400
    assert 'allowed: ["integer"]' in response.json()["message"]


@pytest.mark.parametrize("value", ["1e400", "Infinity", "1.5", "true"])
def test_legacy_part_number_must_be_an_integer(esd, value):
    checkpoint_id = created_checkpoint(esd)
    raw = (
        f'{{"checkpoint_id": "{checkpoint_id}", "status": "Active", "multi_parts_tags": {{"a.safetensors": '
        f'[{{"ETag": "e", "PartNumber": {value}}}]}}}}'
    ).encode()
    response = send(esd, "PUT", "/legacy/checkpoint", raw)
    assert response.status_code < 500
    assert "is not an integer" in json.dumps(response.json())


@pytest.mark.parametrize(("method", "path", "body", "field"), BODIES, ids=IDS)
def test_deep_nesting_is_a_400_naming_the_limit(esd, method, path, body, field):
    response = send(esd, method, path, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400
    assert response.json()["message"] == "[instance nests objects and arrays deeper than allowed (maximum depth: 64)]"


def test_nesting_up_to_the_limit_is_read(esd):
    nested = "[" * 63 + "]" * 63
    response = send(esd, "POST", "/prod/roles", with_raw({"role_name": "r", "permissions": ["train:all"]}, "x", nested))
    assert response.status_code == 201


def test_payload_string_nested_too_deeply_is_a_400(esd):
    body = {"task_type": "txt2img", "inference_type": "Async", "models": {}, "payload_string": "[" * 100_000}
    response = esd.post("/prod/inferences", user="api", json=body)
    assert response.status_code == 400
    assert response.json()["message"] == "payload_string must be valid json string"


@pytest.fixture
def small(make_client):
    """Limits small enough to test with: 4 KiB for most routes, 16 KiB for payload routes."""
    return make_client(max_body_bytes=4096, max_payload_body_bytes=16384)


LIMIT_MESSAGE = (
    "Request body is larger than {} bytes, the limit of this route; the server's operator sets it with OPENESD_{}"
)


@pytest.mark.parametrize(
    "path", ["/prod/roles", "/prod/endpoints", "/legacy/dataset", "/prod/inferences", "/legacy/inference/v2"]
)
def test_a_body_over_the_route_limit_is_a_413_naming_the_setting(small, path):
    payload = path.endswith(("/inferences", "/inference/v2"))
    limit, setting = (16384, "MAX_PAYLOAD_BODY_BYTES") if payload else (4096, "MAX_BODY_BYTES")
    response = send(small, "POST", path, b'{"x": "' + b"a" * limit + b'"}')
    assert response.status_code == 413
    assert response.json() == {"statusCode": 413, "message": LIMIT_MESSAGE.format(limit, setting)}


def test_a_chunked_body_is_cut_off_at_the_limit(small):
    def chunks():  # no Content-Length: sent chunked
        for _ in range(100):
            yield b"a" * 1024

    response = small.call("POST", "/prod/roles", user="api", content=chunks())
    assert response.status_code == 413
    assert response.json()["message"] == LIMIT_MESSAGE.format(4096, "MAX_BODY_BYTES")


def test_a_payload_route_takes_a_body_over_the_default_limit(small):
    body = {
        "task_type": "txt2img",
        "inference_type": "Async",
        "models": {},
        "sagemaker_endpoint_name": "none",
        "payload_string": json.dumps({"init_images": ["a" * 8000]}),
    }
    response = small.post("/prod/inferences", user="api", json=body)
    assert response.status_code != 413


def test_default_limits_are_1_mib_and_64_mib_for_payloads(settings_factory):
    settings = settings_factory()
    assert (settings.max_body_bytes, settings.max_payload_body_bytes) == (1024**2, 64 * 1024**2)


@pytest.mark.parametrize(
    "url",
    [
        "/prod/datasets/x%00y",
        "/prod/inferences?exclusive_start_key=x%00y",
        "/legacy/inference/get-inference-job?jobID=a%00",
    ],
)
def test_nul_in_the_path_or_query_is_a_400(esd, url):
    response = esd.get(url, user="api")
    assert response.status_code == 400
    assert "NUL character" in response.json()["message"]


@pytest.mark.parametrize("field", ["part", "expires"])
def test_a_unicode_digit_in_a_signed_url_is_refused_not_a_500(esd, field):
    url = esd.post(
        "/prod/checkpoints",
        user="api",
        json={
            "checkpoint_type": "Lora",
            "params": {},
            "filenames": [{"filename": "b.safetensors", "parts_number": 1}],
        },
    ).json()["data"]["s3PresignUrl"]["b.safetensors"][0]
    path = url.removeprefix("http://testserver")
    query = dict(part.split("=", 1) for part in path.split("?", 1)[1].split("&"))
    tampered = path.replace(f"{field}={query[field]}", f"{field}=%C2%B2")  # "²": isdigit(), but not for int()
    response = esd.http.put(tampered, content=b"x")
    assert response.status_code == 403
    assert f"invalid {'part number' if field == 'part' else 'expires value'} '²'" in response.json()["message"]


LONG = "é" * 128 + ".png"  # 260 bytes in UTF-8, 132 characters


def test_a_file_name_over_255_bytes_is_refused_at_create(esd):
    response = esd.post(
        "/prod/checkpoints",
        user="api",
        json={"checkpoint_type": "Lora", "params": {}, "filenames": [{"filename": LONG, "parts_number": 1}]},
    )
    assert response.status_code == 400
    assert "is longer than 255 bytes (UTF-8)" in response.json()["message"]


@pytest.mark.parametrize(("prefix", "filename"), [("é" * 128, "a.png"), ("10_cat", LONG)])
def test_a_dataset_prefix_or_file_name_over_255_bytes_is_refused_at_create(esd, prefix, filename):
    response = esd.post(
        "/prod/datasets",
        user="api",
        json={
            "dataset_name": "d",
            "creator": "api",
            "params": {},
            "prefix": prefix,
            "content": [{"filename": filename, "name": "a", "type": "image", "params": {}}],
        },
    )
    assert response.status_code == 400
    assert "is longer than 255 bytes (UTF-8)" in response.json()["message"]


def test_a_name_of_255_bytes_is_still_taken(esd):
    response = esd.post(
        "/prod/checkpoints",
        user="api",
        json={
            "checkpoint_type": "Lora",
            "params": {},
            "filenames": [{"filename": "a" * 243 + ".safetensors", "parts_number": 1}],
        },
    )
    assert response.status_code == 201
