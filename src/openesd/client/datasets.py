"""`/datasets` (esd-api.md §9), with upload of a kohya folder (`<repeats>_<concept>/` images + captions)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from openesd.client._resource import Resource
from openesd.client._transport import ESDError

_KOHYA = re.compile(r"^\d+_.+")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_IMAGES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
_BATCH = 100  # ESD accepts at most 100 files per POST /datasets


def kohya_folders(folder: Path) -> list[Path]:
    """The `<repeats>_<concept>` folders: `folder` itself, or its sub-folders."""
    if not folder.is_dir():
        raise ESDError(0, f"{folder} is not a folder")
    if _KOHYA.match(folder.name):
        return [folder]
    found = sorted(p for p in folder.iterdir() if p.is_dir() and _KOHYA.match(p.name))
    if not found:
        raise ESDError(0, f"{folder} has no kohya folder named <repeats>_<concept> (e.g. 10_cat) with images")
    return found


def dataset_name_for(folder: Path) -> str:
    """A valid dataset name from a folder name: `10_my cat` -> `my_cat` (ESD: letter first, ≤ 20 chars)."""
    base = folder.name.split("_", 1)[1] if _KOHYA.match(folder.name) else folder.name
    name = re.sub(r"[^A-Za-z0-9_-]", "_", base).lstrip("0123456789_-")[:20]
    if not name:
        raise ESDError(0, f"cannot make a dataset name from {folder.name!r}; pass one with name=")
    return name


def file_type(path: Path) -> str:
    return "image" if path.suffix.lower() in _IMAGES else "text"


class Datasets(Resource):
    def list(self, limit: int | None = None, status: str | None = None) -> list[dict]:
        return list(self._cursor("/datasets", "datasets", {"dataset_status": status, "limit": 50}, limit))

    def get(self, name: str) -> dict:
        return self._t.call("GET", f"/datasets/{name}")

    def create(self, name: str, files: list[dict], *, prefix: str = "", description: str = "") -> dict:
        """Register files ({filename, name, type, params}); returns {datasetName, s3PresignUrl}."""
        body = {
            "dataset_name": name,
            "content": files,
            "params": {"description": description},
            "prefix": prefix,
            "creator": self._t.creator,
        }
        return self._t.call("POST", "/datasets", json=body)

    def set_status(self, name: str, status: str) -> dict:
        return self._t.call("PUT", f"/datasets/{name}", json={"status": status})

    def delete(self, names: list[str]) -> None:
        self._t.call("DELETE", "/datasets", json={"dataset_name_list": list(names)})

    def upload_folder(
        self,
        folder: str | Path,
        name: str | None = None,
        *,
        description: str = "",
        progress: Callable[[int, int], None] | None = None,
    ) -> dict:
        """Upload a kohya folder: register the files, PUT each to its URL, mark the dataset Enabled."""
        folder = Path(folder)
        name = name or dataset_name_for(folder)
        if not _NAME.match(name) or len(name) > 20:
            raise ESDError(
                0,
                f"dataset name {name!r} must start with a letter, hold only letters, digits, _ "
                f"or -, and be at most 20 characters",
            )
        batches = [(sub.name, chunk) for sub in kohya_folders(folder) for chunk in _chunked(_files(sub))]
        total, done = sum(len(files) for _, files in batches), 0
        for prefix, files in batches:
            urls = self.create(name, [_entry(f) for f in files], prefix=prefix, description=description)
            for path in files:
                self._t.put_object(urls["s3PresignUrl"][path.name], path.read_bytes())
                done += 1
                if progress:
                    progress(done, total)
        return self.set_status(name, "Enabled")


def _files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not any(file_type(p) == "image" for p in files):
        raise ESDError(0, f"{folder} holds no images ({', '.join(sorted(_IMAGES))})")
    return files


def _chunked(files: list[Path]) -> list[list[Path]]:
    return [files[i : i + _BATCH] for i in range(0, len(files), _BATCH)]


def _entry(path: Path) -> dict:
    return {"filename": path.name, "name": path.name, "type": file_type(path), "params": {}}
