"""`client.checkpoints.upload` against a real server: parts, retries, progress and resume state."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from openesd.client import Client, ESDError
from tests.support.server import API_KEY
from tests.support.model_files import model_file_bytes

MiB = 1 << 20


class FlakyParts(httpx.HTTPTransport):
    """Drops the connection on the first try of the chosen part numbers; counts part PUTs."""

    def __init__(self, flaky: set[int]):
        super().__init__()
        self.flaky, self.puts = set(flaky), []

    def handle_request(self, request):
        part = request.url.params.get("part")
        if request.method == "PUT" and part:
            self.puts.append(int(part))
            if int(part) in self.flaky:
                self.flaky.discard(int(part))
                request.read()
                raise httpx.RemoteProtocolError("peer closed connection")
        return super().handle_request(request)


@pytest.fixture
def model(tmp_path, request):
    path = tmp_path / f"{request.node.name[5:40]}.safetensors"  # names are unique server-wide
    path.write_bytes(model_file_bytes("lora", padding=3 * MiB + 1, salt=request.node.name))
    return path


def listed(client, checkpoint_id):
    return next(c for c in client.checkpoints.list() if c["id"] == checkpoint_id)


def test_a_failed_part_is_retried_and_progress_reaches_the_size(server, model):
    transport = FlakyParts({2})
    seen = []
    with Client(server.base, API_KEY, transport=transport) as client:
        done = client.checkpoints.upload(
            model, "Lora", part_size=MiB, parallel=2, backoff=0.01, progress=lambda n, total: seen.append((n, total))
        )
        assert sorted(transport.puts) == [1, 2, 2, 3, 4]
        assert seen[-1] == (model.stat().st_size, model.stat().st_size)
        assert listed(client, done.checkpoint["id"])["hash"] == hashlib.sha256(model.read_bytes()).hexdigest()
        client.checkpoints.delete([done.checkpoint["id"]])


def test_retries_are_bounded(server, model):
    class Broken(httpx.HTTPTransport):
        def handle_request(self, request):
            if request.url.params.get("part") == "1":
                raise httpx.ConnectError("connection refused")
            return super().handle_request(request)

    with Client(server.base, API_KEY, transport=Broken()) as client:
        with pytest.raises(ESDError, match="part 1 failed: connection refused"):
            client.checkpoints.upload(model, "Lora", part_size=MiB, retries=2, backoff=0.01)


def test_resume_state_skips_finished_parts_and_is_removed_when_done(server, model, tmp_path):
    state = tmp_path / "state.json"
    transport = FlakyParts({3, 4})
    with Client(server.base, API_KEY, transport=transport) as client:
        with pytest.raises(ESDError, match="part 3 failed"):
            client.checkpoints.upload(model, "Lora", part_size=MiB, parallel=1, retries=0, resume_state=state)
        saved = json.loads(state.read_text())
        assert sorted(saved["parts"]) == ["1", "2"] and len(saved["urls"]) == 4

        transport.puts.clear()
        done = client.checkpoints.upload(model, "Lora", resume_state=state)
        assert sorted(transport.puts) == [3, 4]
        assert (done.parts, done.parts_sent) == (4, 2)
        assert done.checkpoint["id"] == saved["checkpoint_id"] and not state.exists()
        assert listed(client, done.checkpoint["id"])["status"] == "Active"
        client.checkpoints.delete([done.checkpoint["id"]])


def test_a_changed_file_starts_a_new_upload_instead_of_resuming(server, model, tmp_path):
    state = tmp_path / "state.json"
    with Client(server.base, API_KEY, transport=FlakyParts({2})) as client:
        with pytest.raises(ESDError):
            client.checkpoints.upload(model, "Lora", part_size=MiB, parallel=1, retries=0, resume_state=state)
        first = json.loads(state.read_text())["checkpoint_id"]
        model.write_bytes(
            model_file_bytes("lora", padding=MiB - 4096, salt="edited")
        )  # edited since: the old parts must not be reused
        os.utime(model, (1, 1))
        with pytest.raises(ESDError, match="already exists"):  # the interrupted record still holds the name
            client.checkpoints.upload(model, "Lora", resume_state=state)
        client.checkpoints.delete([first])
        done = client.checkpoints.upload(model, "Lora", resume_state=state)
        assert done.checkpoint["id"] != first and done.parts_sent == 1
        client.checkpoints.delete([done.checkpoint["id"]])


def test_too_many_parts_is_refused_before_anything_is_sent(client, model):
    with pytest.raises(ValueError, match="ESD allows at most 100"):
        client.checkpoints.upload(model, "Lora", part_size=16 * 1024)


def test_parts_go_out_through_sendfile_on_a_real_socket(client, model, monkeypatch):
    from openesd.client import _sendfile

    sent_directly = []
    put_range = _sendfile.put_range
    monkeypatch.setattr(_sendfile, "put_range", lambda *args: sent_directly.append(args[0]) or put_range(*args))
    seen = []
    done = client.checkpoints.upload(model, "Lora", part_size=MiB, parallel=4, progress=lambda n, t: seen.append(n))
    assert len(sent_directly) == 4 and seen[-1] == model.stat().st_size
    assert listed(client, done.checkpoint["id"])["hash"] == hashlib.sha256(model.read_bytes()).hexdigest()
    client.checkpoints.delete([done.checkpoint["id"]])


def test_a_refused_part_url_is_reported_without_retrying(client, model):
    from openesd.client import _sendfile

    with pytest.raises(ESDError) as raised:
        _sendfile.put_range(client.base_url.rsplit("/prod", 1)[0] + "/objects/x?sig=bad", str(model), 0, 10, print)
    assert raised.value.status == 403
