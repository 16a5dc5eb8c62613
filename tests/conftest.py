"""Root fixtures: isolated settings, throwaway PostgreSQL and S3 (moto) servers for the session, and
`database_url` / `object_store` parametrized over every backend for the contract suites.

The servers come from `bash scripts/test-services.sh start`; when they are missing the tests that
need them are skipped, or fail when the CI variable is set.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from openesd.settings import Settings

SERVICES_HINT = "run `bash scripts/test-services.sh start`"


class IsolatedSettings(Settings):
    """Settings from the constructor's arguments only: no OPENESD_* variables, no .env file."""

    warm_rembg: bool = False  # tests start many workers; only the tests of warming turn it on

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **other_sources):
        return (init_settings,)


@pytest.fixture
def settings_factory(tmp_path) -> Callable[..., Settings]:
    """`settings_factory(**overrides)`: Settings with `data_dir=tmp_path` unless overridden."""

    def build(**overrides) -> Settings:
        return IsolatedSettings(**({"data_dir": tmp_path} | overrides))

    return build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_missing(message: str) -> None:
    """Skip on a developer's machine; fail in CI, where a missing server is a broken setup."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} ({SERVICES_HINT})", pytrace=False)
    pytest.skip(f"{message}: {SERVICES_HINT}")


# -- PostgreSQL ---------------------------------------------------------------------------------


def _pg_binary(name: str) -> str | None:
    # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin.
    found = shutil.which(name)
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    return found or (candidates[-1] if candidates else None)


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class PostgresServer:
    """One throwaway cluster in a temp folder, on a free port, run as `postgres` when we are root."""

    def __init__(self, initdb: str, pg_ctl: str):
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="openesd-pg-"))
        self.data = self.folder / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # postgres refuses to run as root; the cluster's folder must belong to its user.
            shutil.chown(self.folder, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def start(self) -> None:
        self._run(self.initdb, "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -F -c max_connections=200"
        self._run(
            self.pg_ctl, "-D", self.data, "-l", self.folder / "server.log", "-o", options, "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        subprocess.run(
            [*self._as_user, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(sql)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: object) -> None:
        result = subprocess.run([*self._as_user, *map(str, command)], capture_output=True, text=True)
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr}{tail}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not (initdb and pg_ctl):
        service_missing("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    if os.geteuid() == 0 and not (shutil.which("runuser") and _user_exists("postgres")):
        service_missing("as root, PostgreSQL runs as the `postgres` user via runuser; one is missing")
    server = PostgresServer(initdb, pg_ctl)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """`postgresql+psycopg://postgres@127.0.0.1:<port>/openesd_test`: one database for the session."""
    postgres_server.admin('CREATE DATABASE "openesd_test"')
    return postgres_server.url("openesd_test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database per test: a new SQLite file, or a new database on the session server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'openesd.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"test_{uuid.uuid4().hex[:16]}"
    server.admin(f'CREATE DATABASE "{name}"')
    yield server.url(name)
    server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- S3 (moto's real HTTP server) ---------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server in a subprocess, for the whole session."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        service_missing("moto's server (the `moto[server]` test extra) is not installed")
    port = free_port()
    # Real S3 wants parts of 5 MiB but the last; tests upload small files in several parts.
    env = os.environ | {"S3_UPLOAD_PART_MIN_SIZE": "1", "AWS_DEFAULT_REGION": "us-east-1"}
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(f"{url}/moto-api/", process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_until_answering(url: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"moto server exited with {process.returncode}: {log.read()[-2000:]!r}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not answer at {url} within 60 s")


@pytest.fixture
def s3_settings(settings_factory, s3_endpoint) -> Settings:
    """Settings pointing at the moto server (dummy credentials: moto accepts any)."""
    return settings_factory(
        s3_endpoint_url=s3_endpoint, s3_access_key_id="test", s3_secret_access_key="test", s3_region="us-east-1"
    )


# -- object stores ------------------------------------------------------------------------------


@pytest.fixture
def store_settings(settings_factory) -> Settings:
    """The settings `object_store` builds stores with; override it to change `public_url`."""
    return settings_factory()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def object_store(request, tmp_path, store_settings):
    """An empty store per test: `file://<tmp>/objects`, or a fresh bucket on the moto server."""
    from openesd.storage import open_store

    if request.param == "local":
        yield open_store((tmp_path / "objects").as_uri(), store_settings)
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    settings = store_settings.model_copy(
        update={
            "s3_endpoint_url": endpoint,
            "s3_access_key_id": "test",
            "s3_secret_access_key": "test",
            "s3_region": "us-east-1",
        }
    )
    store = open_store(f"s3://test-{uuid.uuid4().hex[:16]}/objects?create_bucket=true", settings)
    yield store
    store.delete_prefix("")
