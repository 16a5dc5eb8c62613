"""The real `openesd serve` process on a free port, spoken to over HTTP, stopped and started again."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data_dir, port):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENESD_")}
        env.update(OPENESD_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "openesd", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.base = f"http://127.0.0.1:{port}"
        self.banner = self._read_banner()
        self._wait_ready()

    def _read_banner(self) -> str:
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if line.startswith("try: curl"):
                return "".join(lines)
        raise AssertionError("server exited before printing its banner:\n" + "".join(lines))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.base + "/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("server did not answer within 30 s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=20)


def test_first_start_prints_the_key_once_and_restart_keeps_data(tmp_path):
    port = free_port()
    server = Server(tmp_path / "data", port)
    try:
        assert f"OpenESD API: http://127.0.0.1:{port}/prod" in server.banner
        assert f"console: http://127.0.0.1:{port}/console/" in server.banner
        assert httpx.get(f"http://127.0.0.1:{port}/console/").status_code == 200
        key = re.search(r"API key \(shown once.*\): ([A-Za-z0-9]{20})", server.banner).group(1)
        for path in ("/prod/ping", "/ping"):
            response = httpx.get(server.base + path, headers={"x-api-key": key})
            assert response.json() == {"statusCode": 200, "message": "pong"}
        created = httpx.post(
            server.base + "/prod/users",
            headers={"x-api-key": key},
            json={"username": "admin", "password": "pw", "initial": True},
        )
        assert created.status_code == 201
    finally:
        server.stop()

    server = Server(tmp_path / "data", port)
    try:
        assert key not in server.banner
        users = httpx.get(server.base + "/prod/users", headers={"x-api-key": key, "username": "admin"})
        assert "admin" in [u["username"] for u in users.json()["data"]["users"]]
        assert httpx.get(server.base + "/readyz").json()["ready"] is True
    finally:
        server.stop()
