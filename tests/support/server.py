"""A real `openesd serve` process on a free port, with chosen settings (the API key among them)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m openesd serve` with only the given OPENESD_* variables; stopped with SIGINT."""

    def __init__(self, data_dir, port: int | None = None, **settings: str):
        self.port = port or free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENESD_")}
        env.update(OPENESD_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        # Test workers skip rembg's background warm-up (minutes of numba compiling on a fresh machine) unless asked.
        env.update(OPENESD_WARM_REMBG="false")
        env.update({f"OPENESD_{name.upper()}": value for name, value in settings.items()})
        # A file, not a pipe: access logs of many requests would fill a pipe and stall the server.
        self.log = Path(data_dir).parent / f"server-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "openesd", "serve", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.base = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("server exited:\n" + self.log.read_text())
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("server did not answer within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


API_KEY = "clientTestKey0123456789"


def start_test_server(tmp_path_factory) -> ServerProcess:
    """A server with a known API key that may import from this machine's own HTTP servers."""
    return ServerProcess(tmp_path_factory.mktemp("server") / "data", api_keys=API_KEY, allow_private_url_imports="true")
