"""`GET /endpoints` (visibility, lookup, cursor paging) and `DELETE /endpoints` (esd-api.md §7.3, §7.4)."""

from __future__ import annotations

from tests.api.test_roles import make_role, make_user
from tests.endpoints.conftest import create, listed, message


def names(esd, user="api", **params) -> list[str]:
    return [e["endpoint_name"] for e in listed(esd, user, **params)]


def test_newest_first_with_every_field_and_numbers_as_strings(esd):
    for n in range(3):
        assert create(esd, endpoint_name=f"e{n}", assign_to_roles=[f"r{n}"]).status_code == 202
    endpoints = listed(esd)
    assert [e["endpoint_name"] for e in endpoints] == ["esd-async-e2", "esd-async-e1", "esd-async-e0"]
    assert endpoints[0]["current_instance_count"] == "0" and endpoints[0]["min_instance_number"] == "0"
    assert endpoints[0]["max_instance_number"] == "1" and endpoints[0]["endTime"] is None


def test_cursor_paging_walks_every_endpoint_once(esd):
    for n in range(5):
        create(esd, endpoint_name=f"e{n}", assign_to_roles=[f"r{n}"])
    seen, key = [], None
    while True:
        params = {"limit": 2} | ({"exclusive_start_key": key} if key else {})
        data = esd.get("/prod/endpoints", user="api", params=params).json()["data"]
        seen.append([e["endpoint_name"] for e in data["endpoints"]])
        key = data["last_evaluated_key"]
        if key is None:
            break
    assert seen == [["esd-async-e4", "esd-async-e3"], ["esd-async-e2", "esd-async-e1"], ["esd-async-e0"]]


def test_bad_paging_values_are_named(esd):
    bad_key = esd.get("/prod/endpoints", user="api", params={"exclusive_start_key": "nonsense"})
    assert message(bad_key) == "exclusive_start_key 'nonsense' is not a key returned by this listing"
    assert message(esd.get("/prod/endpoints", user="api", params={"limit": 0})) == "limit must be at least 1, got 0"
    assert "limit" in message(esd.get("/prod/endpoints", user="api", params={"limit": "ten"}))


def test_lookup_by_deployment_job_id(esd):
    wanted = create(esd, endpoint_name="a", assign_to_roles=["a"]).json()["data"]["EndpointDeploymentJobId"]
    create(esd, endpoint_name="b", assign_to_roles=["b"])
    assert names(esd, endpointDeploymentJobId=wanted) == ["esd-async-a"]
    assert names(esd, endpointDeploymentJobId="no-such-id") == []


def test_list_only_holders_see_endpoints_of_the_named_user(esd):
    make_role(esd, "lookers", ["sagemaker_endpoint:list"])
    make_role(esd, "painters", ["inference:all"])
    make_user(esd, "lou", ["lookers"])
    make_user(esd, "pat", ["painters"])
    create(esd, endpoint_name="paint", assign_to_roles=["painters"])
    create(esd, endpoint_name="ops", assign_to_roles=["IT Operator"])
    create(esd, endpoint_name="all", assign_to_roles=["*"])
    create(esd, endpoint_name="lou", assign_to_roles=["lou"])
    assert names(esd, user="lou") == []  # `…:list` alone shows nothing without a username query
    assert names(esd, user="lou", username="pat") == ["esd-async-all", "esd-async-paint"]
    assert names(esd, user="lou", username="lou") == ["esd-async-lou", "esd-async-all"]
    assert len(names(esd, user="api")) == 4  # sagemaker_endpoint:all sees everything
    unknown = esd.get("/prod/endpoints", user="lou", params={"username": "ghost"})
    assert unknown.json() == {"statusCode": 400, "message": 'user: "ghost" not exist'}


def test_listing_needs_a_permission(esd):
    make_role(esd, "painters", ["inference:all"])
    make_user(esd, "pat", ["painters"])
    answer = esd.get("/prod/endpoints", user="pat")
    assert answer.status_code == 403
    assert message(answer) == "User pat has no permissions: ['sagemaker_endpoint:all', 'sagemaker_endpoint:list']"
    assert esd.get("/prod/endpoints").status_code == 401


def test_delete_removes_records_at_once_and_stops_instances(esd):
    kept = create(esd, endpoint_name="kept", assign_to_roles=["a"]).json()["data"]
    gone = create(esd, endpoint_name="gone", assign_to_roles=["b"]).json()["data"]
    answer = esd.delete(
        "/prod/endpoints", json={"endpoint_name_list": ["esd-async-gone", "esd-async-nothere"], "username": "ignored"}
    )
    assert answer.status_code == 204 and answer.content == b""
    assert names(esd) == ["esd-async-kept"]
    assert esd.engine.undeployed == [gone["EndpointDeploymentJobId"]]
    assert kept["EndpointDeploymentJobId"] not in esd.engine.undeployed


def test_delete_needs_a_list_of_names(esd):
    assert message(esd.delete("/prod/endpoints", json={})) == (
        '[object has missing required properties (["endpoint_name_list"])]'
    )
    assert message(esd.delete("/prod/endpoints", json={"endpoint_name_list": [""]})) == (
        '[string "" is too short (length: 0, required minimum: 1)]'
    )
