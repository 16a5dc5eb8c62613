"""Where the CLI finds the server: `openesd login` writes a TOML file, `OPENESD_*` variables override it."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

FIELDS = {"url": "OPENESD_URL", "api_key": "OPENESD_API_KEY", "user": "OPENESD_USER", "token": "OPENESD_TOKEN"}


@dataclass
class Config:
    url: str | None = None
    api_key: str | None = None
    user: str | None = None
    token: str | None = None


def config_path() -> Path:
    explicit = os.environ.get("OPENESD_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "openesd" / "config.toml"


def load() -> Config:
    """The file's values, each replaced by its environment variable when that is set."""
    path = config_path()
    stored = tomllib.loads(path.read_text()) if path.exists() else {}
    values = {name: os.environ.get(env) or stored.get(name) for name, env in FIELDS.items()}
    return Config(**values)


def save(config: Config) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON string escapes are valid TOML basic strings, so json.dumps quotes safely.
    lines = [f"{name} = {json.dumps(value)}" for name, value in asdict(config).items() if value]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # holds the API key
    return path


def upload_state_path(file: Path) -> Path:
    """The resume state of an upload of `file`, kept beside the config."""
    digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:16]
    return config_path().parent / "uploads" / f"{file.name}.{digest}.json"
