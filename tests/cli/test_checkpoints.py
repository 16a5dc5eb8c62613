"""`openesd checkpoints`: parts uploaded in parallel, an interrupted upload resumed, import, rename, rm."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import time

import pytest

from openesd.client import ESDError
from openesd.client._multipart import PartUploader
from tests.support.model_files import model_file_bytes

MiB = 1 << 20
SEND = PartUploader._put  # the real one (sendfile or httpx), before any test wraps it


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny-model.safetensors"
    path.write_bytes(
        model_file_bytes("lora", padding=5 * MiB + 12345, salt="cli")
    )  # 6 parts of 1 MiB, the last one short
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_id(cli, checkpoint_id):
    return next(c for c in cli.json("checkpoints", "list") if c["id"] == checkpoint_id)


def count_puts(monkeypatch, fail_after: int | None = None) -> list[str]:
    """Record every part PUT; after `fail_after` of them, refuse the rest as an expired URL would."""
    sent: list[str] = []
    lock = threading.Lock()

    def put(self, number, progress):
        with lock:
            if fail_after is not None and len(sent) >= fail_after:
                raise ESDError(403, "simulated: connection lost")
            sent.append(self.state.urls[number - 1])
        return SEND(self, number, progress)

    monkeypatch.setattr(PartUploader, "_put", put)
    return sent


def test_upload_sends_parts_in_parallel_and_the_checkpoint_becomes_active(logged_in, model_file, monkeypatch):
    puts = count_puts(monkeypatch)
    result = logged_in("checkpoints", "upload", model_file, "--type", "Lora", "--part-size-mb", "1")
    assert len(puts) == 6
    assert "(6 of 6 parts sent now), status Active" in result.stdout
    assert "tiny-model.safetensors" in result.stderr  # the progress bar's label
    checkpoint_id = result.stdout.split(" as ")[1].split()[0]
    listed = by_id(logged_in, checkpoint_id)
    assert listed["name"] == ["tiny-model.safetensors"] and listed["status"] == "Active"
    assert listed["hash"] == sha256(model_file)  # the server joined the parts in order
    logged_in("checkpoints", "rm", checkpoint_id)


def test_an_interrupted_upload_resumes_without_resending_finished_parts(logged_in, model_file, monkeypatch):
    first = count_puts(monkeypatch, fail_after=2)
    broken = logged_in(
        "checkpoints", "upload", model_file, "-t", "Lora", "--part-size-mb", "1", "--parallel", "1", ok=False
    )
    assert broken.exit_code == 1
    assert "part 3 failed: simulated: connection lost" in broken.stderr
    assert "--resume` sends only the missing parts" in broken.stderr
    assert len(first) == 2

    second = count_puts(monkeypatch)
    resumed = logged_in("checkpoints", "upload", model_file, "-t", "Lora", "--resume")
    assert "(4 of 6 parts sent now), status Active" in resumed.stdout
    assert len(second) == 4 and not set(second) & set(first)
    checkpoint_id = resumed.stdout.split(" as ")[1].split()[0]
    assert by_id(logged_in, checkpoint_id)["hash"] == sha256(model_file)

    again = logged_in("checkpoints", "upload", model_file, "-t", "Lora", "--resume", ok=False)
    assert again.exit_code != 0 and "no interrupted upload" in again.output
    logged_in("checkpoints", "rm", checkpoint_id)


@pytest.fixture
def file_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def wait_until(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return value


def test_import_by_url_then_rename_and_remove(logged_in, file_server):
    cli = logged_in
    folder, base = file_server
    (folder / "imported-vae.safetensors").write_bytes(model_file_bytes("vae", "unknown", padding=11_000))
    answer = cli("checkpoints", "import", f"{base}/imported-vae.safetensors", "--type", "VAE")
    assert "Checkpoint creation in progress" in answer.stdout

    def active():
        vaes = cli.json("checkpoints", "list", "--type", "VAE")
        found = [c for c in vaes if c["name"] == ["imported-vae.safetensors"]]
        return found if found and found[0]["status"] == "Active" else None

    checkpoint_id = wait_until(active)[0]["id"]
    twice = cli("checkpoints", "import", f"{base}/imported-vae.safetensors", "--type", "VAE", ok=False)
    assert twice.exit_code == 1
    assert "imported-vae.safetensors already exists" in twice.stderr
    assert "rename is processing" in cli("checkpoints", "rename", checkpoint_id, "myvae").stdout
    wait_until(lambda: by_id(cli, checkpoint_id)["name"] == ["myvae"])

    table = cli("checkpoints", "list").stdout
    assert checkpoint_id[:8] in table and "myvae" in table
    cli("checkpoints", "rm", checkpoint_id)
    assert checkpoint_id not in [c["id"] for c in cli.json("checkpoints", "list")]


def test_server_errors_exit_non_zero_with_the_servers_message(logged_in, model_file):
    bad = logged_in("checkpoints", "rename", "no-such-id", "newname", ok=False)
    assert bad.exit_code == 1
    assert "Error: checkpoint not found with id no-such-id (HTTP 404)" in bad.stderr
