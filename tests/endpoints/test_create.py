"""`POST /endpoints`: the checks of esd-api.md §7.2 in order, names, quotas and the 202 record."""

from __future__ import annotations

import re

import pytest

from tests.api.test_roles import make_role, make_user
from tests.endpoints.conftest import create, listed, message
from tests.support.esd_jobs import endpoint_body
from tests.support.no_worker_engine import without_workers

CREATE_PERMISSIONS = "['sagemaker_endpoint:all', 'sagemaker_endpoint:create']"


def test_created_endpoint_answers_202_with_the_creating_record(esd):
    answer = create(
        esd, endpoint_name="test", autoscaling_enabled=True, max_instance_number=2, assign_to_roles=["IT Operator"]
    )
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    assert body["message"] == "Endpoint deployment started: esd-async-test"
    data = body["data"]
    assert set(data) == {
        "EndpointDeploymentJobId",
        "autoscaling",
        "max_instance_number",
        "startTime",
        "status",
        "instance_type",
        "current_instance_count",
        "endTime",
        "endpoint_status",
        "endpoint_name",
        "error",
        "endpoint_type",
        "owner_group_or_role",
        "min_instance_number",
        "custom_extensions",
    }
    assert data["endpoint_status"] == "Creating" and data["current_instance_count"] == "0"
    assert (data["status"], data["endTime"], data["error"]) == (None, None, None)
    assert data["max_instance_number"] == 2  # echoed with the type the client sent
    assert data["min_instance_number"] == "0"  # the default, as a string
    assert data["owner_group_or_role"] == ["IT Operator"] and data["custom_extensions"] == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", data["startTime"])
    assert [spec.name for spec in esd.engine.deployed] == ["esd-async-test"]  # handed to the engine
    assert listed(esd)[0]["max_instance_number"] == "2"  # listings serialise numbers as strings


def test_names_are_esd_type_and_suffix(esd):
    real_time = create(esd, endpoint_type="Real-time", endpoint_name="rt", assign_to_roles=["a"]).json()["data"]
    assert real_time["endpoint_name"] == "esd-real-time-rt" and real_time["endpoint_type"] == "Real-time"
    unnamed = create(esd, assign_to_roles=["b"]).json()["data"]
    assert unnamed["endpoint_name"] == f"esd-async-{unnamed['EndpointDeploymentJobId'][:7]}"


def test_missing_required_fields_are_listed(esd):
    answer = esd.post("/prod/endpoints", user="api", json={"none": "none"})
    assert answer.status_code == 400
    assert message(answer) == (
        '[object has missing required properties (["assign_to_roles","autoscaling_enabled",'
        '"creator","endpoint_type","initial_instance_count","instance_type"])]'
    )


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            {"endpoint_type": "Batch"},
            '[instance value ("Batch") not found in enum (possible values: ["Real-time","Serverless","Async"])]',
        ),
        ({"initial_instance_count": 0}, "[numeric instance is lower than the required minimum (minimum: 1, found: 0)]"),
        (
            {"initial_instance_count": "1"},
            '[instance type (string) does not match any allowed primitive type (allowed: ["integer","number"])]',
        ),
        ({"endpoint_name": "a" * 21}, f'[string "{"a" * 21}" is too long (length: 21, maximum allowed: 20)]'),
        ({"assign_to_roles": []}, "[array is too short: must have at least 1 elements but instance has 0 elements]"),
        ({"min_instance_number": -1}, "[numeric instance is lower than the required minimum (minimum: 0, found: -1)]"),
    ],
)
def test_gateway_validation_messages(esd, overrides, expected):
    assert message(create(esd, **overrides)) == expected


def test_extensions_and_image_together_are_refused_before_identity(esd):
    answer = esd.post("/prod/endpoints", json=endpoint_body(custom_extensions="a", custom_docker_image_uri="img"))
    assert answer.status_code == 400
    assert message(answer) == "custom_extensions and custom_docker_image_uri cannot be used together"


def test_identity_and_permission(esd):
    assert esd.post("/prod/endpoints", json=endpoint_body()).json() == {"statusCode": 401, "message": "Unauthorized"}
    make_role(esd, "lookers", ["sagemaker_endpoint:list"])
    make_user(esd, "bob", ["lookers"])
    answer = create(esd, user="bob")
    assert answer.status_code == 403
    assert message(answer) == f"User bob has no permissions: {CREATE_PERMISSIONS}"
    make_role(esd, "makers", ["sagemaker_endpoint:create"])
    make_user(esd, "mia", ["makers"])
    assert create(esd, user="mia", assign_to_roles=["makers"]).status_code == 202


def test_serverless_is_not_supported(esd):
    assert message(create(esd, endpoint_type="Serverless")) == "Serverless endpoint is not supported yet"


def test_real_time_autoscaling_needs_at_least_one_instance(esd):
    answer = create(esd, endpoint_type="Real-time", endpoint_name="rt", autoscaling_enabled=True)
    assert message(answer) == "min_instance_number should be at least 1 for real-time endpoint: esd-real-time-rt"
    assert (
        create(
            esd, endpoint_type="Real-time", endpoint_name="rt", autoscaling_enabled=True, min_instance_number=1
        ).status_code
        == 202
    )


def test_max_below_min_is_refused_naming_both(esd):
    answer = create(esd, endpoint_name="x", autoscaling_enabled=True, min_instance_number=3, max_instance_number=2)
    assert message(answer) == "max_instance_number (2) must not be below min_instance_number (3): esd-async-x"


def test_at_most_two_distinct_extensions(esd):
    assert message(create(esd, custom_extensions="a, b\nc")) == "custom_extensions should be at most 3"
    accepted = create(esd, custom_extensions="https://x/a.git, https://x/a.git\nhttps://x/b.git")
    assert accepted.status_code == 202, accepted.json()
    assert accepted.json()["data"]["custom_extensions"] == "https://x/a.git,https://x/b.git"


@pytest.mark.parametrize("name", ["my test", "a_b", "-ab", "ab-", "é"])
def test_endpoint_names_must_be_usable_in_urls(esd, name):
    assert message(create(esd, endpoint_name=name)) == (
        f"endpoint_name {name!r} may only hold letters, digits and single inner hyphens, "
        "like ESD's model names (e.g. test-1)"
    )


def test_one_live_endpoint_per_role(esd):
    first = create(esd, endpoint_name="first", assign_to_roles=["IT Operator", "byoc"])
    assert first.status_code == 202
    again = create(esd, endpoint_type="Real-time", endpoint_name="other", assign_to_roles=["sales", "byoc"])
    assert message(again) == "role [byoc] has a valid endpoint already, not allow to have another one"
    assert esd.delete("/prod/endpoints", json={"endpoint_name_list": ["esd-async-first"]}).status_code == 204
    assert (
        create(esd, endpoint_type="Real-time", endpoint_name="other", assign_to_roles=["sales", "byoc"]).status_code
        == 202
    )


def test_same_name_twice_is_an_existing_model(esd):
    assert create(esd, endpoint_name="test", assign_to_roles=["a"]).status_code == 202
    text = message(create(esd, endpoint_name="test", assign_to_roles=["b"]))
    assert "Cannot create already existing model" in text and "esd-model-async-test" in text
    # the same suffix on the other type is another name
    assert create(esd, endpoint_type="Real-time", endpoint_name="test", assign_to_roles=["b"]).status_code == 202


def test_default_capacity_table_on_a_machine_without_gpus(esd):
    quotas = esd.http.app.state.runtime.execution.capacity()
    if quotas.get("gpu") != 8:
        pytest.skip("this machine has GPUs: the CPU defaults do not apply")
    full = create(esd, instance_type="ml.g5.2xlarge", initial_instance_count=8, assign_to_roles=["a"])
    assert full.status_code == 202, full.json()
    assert create(esd, instance_type="cpu", initial_instance_count=8, assign_to_roles=["b"]).status_code == 202
    for instance_type in ("gpu", "ml.g4dn.xlarge", "ml.g6.48xlarge"):
        assert quotas[instance_type] == 8


def test_over_quota_gives_the_aws_limit_message(make_client):
    esd = make_client(instance_quotas={"cpu": 3})
    without_workers(esd)
    assert create(esd, initial_instance_count=2, assign_to_roles=["a"]).status_code == 202
    text = message(
        create(esd, endpoint_name="more", autoscaling_enabled=True, max_instance_number=2, assign_to_roles=["b"])
    )
    assert text.startswith(
        "An error occurred (ResourceLimitExceeded) when calling the CreateEndpoint operation: The account-level "
        "service limit 'cpu for endpoint usage' is 3 Instances, with current utilization of 2 Instances and a "
        "request delta of 2 Instances."
    )
    assert "OPENESD_INSTANCE_QUOTAS" in text  # says how to raise it here
    assert create(esd, endpoint_name="fits", assign_to_roles=["b"]).status_code == 202
    assert [e["endpoint_name"] for e in listed(esd)][0] == "esd-async-fits"


def test_an_unknown_instance_type_has_quota_zero(esd):
    text = message(create(esd, instance_type="ml.p4d.24xlarge"))
    assert "ResourceLimitExceeded" in text and "'ml.p4d.24xlarge for endpoint usage' is 0 Instances" in text


def test_deleted_endpoints_give_their_instances_back(make_client):
    esd = make_client(instance_quotas={"cpu": 1})
    without_workers(esd)
    assert create(esd, endpoint_name="one", assign_to_roles=["a"]).status_code == 202
    assert "ResourceLimitExceeded" in message(create(esd, endpoint_name="two", assign_to_roles=["b"]))
    esd.delete("/prod/endpoints", json={"endpoint_name_list": ["esd-async-one"]})
    assert create(esd, endpoint_name="two", assign_to_roles=["b"]).status_code == 202


def test_cool_down_time_and_unknown_keys_are_ignored(esd):
    answer = create(esd, cool_down_time="1 hour", colour="blue")
    assert answer.status_code == 202, answer.json()
    assert message(create(esd, cool_down_time="1 week", assign_to_roles=["x"])).startswith(
        '[instance value ("1 week") not found in enum'
    )


def test_a_running_training_holds_an_instance_of_its_type(make_client):
    from openesd.metadata.models import Training

    esd = make_client(instance_quotas={"cpu": 2})
    without_workers(esd)
    with esd.http.app.state.sessionmaker.begin() as session:
        session.add(
            Training(
                id="t-1",
                created=0.0,
                job_status="Training",
                checkpoint_id="t-1",
                instance_type="cpu",
                sagemaker_train_name="t-1",
                params={},
                allowed_roles_or_users=["a"],
            )
        )
    assert "current utilization of 1 Instances and a request delta of 2 Instances" in message(
        create(esd, initial_instance_count=2, assign_to_roles=["a"])
    )
    assert create(esd, initial_instance_count=1, assign_to_roles=["a"]).status_code == 202
