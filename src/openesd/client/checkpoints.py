"""`/checkpoints` (esd-api.md §6), with the parallel resumable multipart upload."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from openesd.client._multipart import PartUploader, Progress, UploadState, parts_for
from openesd.client._resource import Resource
from openesd.client._transport import ESDError

TYPES = (
    "Stable-diffusion",
    "embeddings",
    "Lora",
    "hypernetworks",
    "ControlNet",
    "VAE",
    "ESRGAN",
    "rembg",
    "ControlNet-annotator",
    "ADetailer",
    "text_encoder",
)
MIN_PART = 8 << 20


@dataclass
class Upload:
    """A finished upload: the checkpoint, and how many parts this call sent (fewer when resumed)."""

    checkpoint: dict
    parts: int
    parts_sent: int


def default_part_size(size: int) -> int:
    """At least 8 MiB, and large enough that a file needs no more than ESD's 100 parts."""
    return max(MIN_PART, -(-size // 100))


class Checkpoints(Resource):
    def list(
        self,
        *,
        types: list[str] | None = None,
        status: list[str] | None = None,
        username: str | None = None,
        per_page: int = 100,
    ) -> list[dict]:
        """Every visible checkpoint, all pages."""
        return list(self.iter(types=types, status=status, username=username, per_page=per_page))

    def iter(self, *, types=None, status=None, username=None, per_page: int = 100) -> Iterator[dict]:
        params = {"types": types or [], "status": status or [], "per_page": per_page}
        if username:
            params["username"] = username
        page = 1
        while True:
            data = self._t.call("GET", "/checkpoints", params={**params, "page": page}) or {}
            yield from data.get("checkpoints", [])
            if page >= int(data.get("pages") or 0):
                return
            page += 1

    def get(self, checkpoint_id: str) -> dict:
        for checkpoint in self.iter():
            if checkpoint["id"] == checkpoint_id:
                return checkpoint
        raise ESDError(404, f"checkpoint not found with id {checkpoint_id}")

    def create_upload(self, checkpoint_type: str, files: dict[str, int], message: str = "") -> dict:
        """Open a multipart upload: {filename: parts_number} -> {checkpoint, s3PresignUrl}."""
        body = {
            "checkpoint_type": checkpoint_type,
            "params": {"message": message},
            "filenames": [{"filename": name, "parts_number": n} for name, n in files.items()],
        }
        return self._t.call("POST", "/checkpoints", json=body)

    def complete(self, checkpoint_id: str, tags: dict[str, list[dict]], status: str = "Active") -> dict:
        return self._t.call("PUT", f"/checkpoints/{checkpoint_id}", json={"status": status, "multi_parts_tags": tags})

    def import_urls(self, checkpoint_type: str, urls: list[str], message: str = "") -> str:
        """Start background downloads; returns the server's message (the records appear at once)."""
        body = {"checkpoint_type": checkpoint_type, "urls": list(urls), "params": {"message": message}}
        return self._t.call_full("POST", "/checkpoints", json=body).get("message", "")

    def rename(self, checkpoint_id: str, name: str) -> str:
        return self._t.call_full("PUT", f"/checkpoints/{checkpoint_id}", json={"name": name}).get("message", "")

    def delete(self, checkpoint_ids: list[str]) -> None:
        self._t.call("DELETE", "/checkpoints", json={"checkpoint_id_list": list(checkpoint_ids)})

    def upload(
        self,
        path: str | Path,
        checkpoint_type: str,
        *,
        part_size: int | None = None,
        parallel: int = 4,
        progress: Progress | None = None,
        resume_state: str | Path | None = None,
        message: str = "",
        retries: int = 3,
        backoff: float = 0.5,
    ) -> Upload:
        """Upload one file in parts; with `resume_state`, an interrupted upload resumes from there."""
        path = Path(path)
        state_path = Path(resume_state) if resume_state else None
        state = self._resumable(path, state_path) or self._begin(path, checkpoint_type, part_size, message)
        if state_path:
            state.save(state_path)
        missing = len(state.missing())
        PartUploader(
            self._t, state, state_path, parallel=parallel, retries=retries, backoff=backoff, progress=progress
        ).run()
        data = self.complete(state.checkpoint_id, {state.filename: state.tags()})
        if state_path:
            state_path.unlink(missing_ok=True)
        return Upload(data["checkpoint"], len(state.urls), missing)

    def _resumable(self, path: Path, state_path: Path | None) -> UploadState | None:
        if state_path is None or not state_path.exists():
            return None
        state = UploadState.load(state_path)
        return state if state and state.matches(path) else None

    def _begin(self, path: Path, checkpoint_type: str, part_size: int | None, message: str) -> UploadState:
        stat = path.stat()
        part_size = part_size or default_part_size(stat.st_size)
        count = parts_for(stat.st_size, part_size)
        data = self.create_upload(checkpoint_type, {path.name: count}, message)
        return UploadState(
            file=str(path.resolve()),
            size=stat.st_size,
            mtime=stat.st_mtime,
            part_size=part_size,
            checkpoint_id=data["checkpoint"]["id"],
            checkpoint_type=checkpoint_type,
            filename=path.name,
            urls=data["s3PresignUrl"][path.name],
        )
