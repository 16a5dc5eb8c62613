"""Import by URL (§6.3 with decisions.md's fixes): name reserved at once, progress, failure recorded."""

from __future__ import annotations

import time

from tests.checkpoints.conftest import sha256


def wait_for(esd, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = esd.get("/prod/checkpoints", user="api", params={"per_page": 100}).json()["data"]["checkpoints"]
        found = [c for c in items if predicate(c)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError("condition not reached; records: " + repr(items))


def import_(esd, url, checkpoint_type="Lora"):
    return esd.post("/prod/checkpoints", user="api",
                    json={"checkpoint_type": checkpoint_type, "params": {"creator": "api"}, "urls": [url]})


def test_import_reaches_active_with_the_right_hash(make_client, file_server):
    esd = make_client(allow_private_url_imports=True)
    response = import_(esd, f"{file_server.url}/models/tiny.safetensors")
    assert response.status_code == 202
    assert response.json() == {"statusCode": 202, "message": "Checkpoint creation in progress, please check later"}
    again = import_(esd, f"{file_server.url}/models/tiny.safetensors")
    assert again.status_code == 400 and "already exists" in again.json()["message"]
    done = wait_for(esd, lambda c: c["status"] == "Active")
    data = file_server.payloads["tiny.safetensors"]
    assert done["name"] == ["tiny.safetensors"] and done["hash"] == sha256(data)
    assert done["params"]["progress"] == {"bytes_done": len(data), "bytes_total": len(data)}
    store = esd.http.app.state.store
    assert store.get_bytes(f"Lora/checkpoint/custom/{done['id']}/tiny.safetensors") == data


def test_private_addresses_are_refused_by_default(esd, file_server):
    response = import_(esd, f"{file_server.url}/models/tiny.safetensors")
    assert response.status_code == 400
    assert "127.0.0.1" in response.json()["message"] and "OPENESD_ALLOW_PRIVATE_URL_IMPORTS" in response.json()["message"]
    for url in ("http://169.254.169.254/latest/meta-data/x.safetensors", "file:///etc/passwd", "http://[::1]/a.pt"):
        assert import_(esd, url).status_code == 400
    assert esd.get("/prod/checkpoints", user="api").json()["data"]["total"] == 0


def test_a_dropped_connection_leaves_a_disabled_record_with_the_error(make_client, file_server):
    esd = make_client(allow_private_url_imports=True)
    assert import_(esd, f"{file_server.url}/drop/half.safetensors").status_code == 202
    failed = wait_for(esd, lambda c: c["status"] == "Disabled")
    assert failed["name"] == ["half.safetensors"]
    assert "half.safetensors" in failed["params"]["error"]
    assert failed["params"]["import"]["state"] == "failed"


def test_bad_urls_and_extensions(make_client, file_server):
    esd = make_client(allow_private_url_imports=True)
    missing = import_(esd, f"{file_server.url}/models/absent.safetensors")
    assert missing.status_code == 400 and "404" in missing.json()["message"]
    wrong_ext = import_(esd, "http://127.0.0.1:1/archive.zip")
    assert wrong_ext.status_code == 400


def test_a_pending_import_is_resumed_after_a_restart(make_client, file_server, tmp_path, database_url):
    from openesd.api.runtime import boot
    from openesd.metadata.models import Checkpoint
    from tests.api.conftest import make_settings

    settings = make_settings(tmp_path, allow_private_url_imports=True, database_url=database_url)
    runtime = boot(settings)
    with runtime.sessionmaker.begin() as session:  # as a process that died right after the 202 leaves it
        session.add(Checkpoint(
            id="00000000-0000-0000-0000-000000000001", checkpoint_type="Lora", status="Initial",
            names=["tiny.safetensors"], created=time.time(), allowed_roles_or_users=["IT Operator"],
            params={"import": {"url": f"{file_server.url}/m/tiny.safetensors", "state": "running"}},
            hashes={}, version="v1.0"))
    runtime.close()
    esd = make_client(allow_private_url_imports=True)
    done = wait_for(esd, lambda c: c["status"] == "Active")
    assert done["hash"] == sha256(file_server.payloads["tiny.safetensors"])
