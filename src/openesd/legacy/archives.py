"""Legacy-era uploads stored as tar archives (esd-legacy-api.md §1.7): replace an archive with the model
file it holds, and a `.yaml` of the same stem beside it.

Members are read as data into files this module names itself and stored under their base name, so a
member called `../../x`, an absolute path, a link or a device can never write outside the checkpoint."""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from openesd.checkpoints.repository import CheckpointRepository, NameTaken
from openesd.checkpoints.service import already_exists
from openesd.errors import BadRequest
from openesd.metadata.models import Checkpoint
from openesd.storage.base import ObjectStore
from openesd.storage.layout import checkpoint_file

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_MAGIC = (257, b"ustar")  # POSIX/GNU tar headers carry it at this offset


def is_tar(store: ObjectStore, key: str) -> bool:
    offset, magic = _MAGIC
    with store.open(key) as stream:
        head = stream.read(offset + len(magic))
    return head[offset:] == magic


def unpack_checkpoint(store: ObjectStore, repository: CheckpointRepository, checkpoint: Checkpoint) -> None:
    """Every file of the record that is a tar archive is replaced by its contents; the names follow."""
    kind = checkpoint.checkpoint_type
    names, hashes = [], dict(checkpoint.hashes)
    for name in checkpoint.names:
        key = checkpoint_file(kind, checkpoint.id, name)
        if store.stat(key) is None or not is_tar(store, key):
            names.append(name)
            continue
        with tempfile.TemporaryDirectory(prefix="openesd-tar-") as work:
            archive = store.download(key, Path(work) / "archive.tar")
            taken_out = _take_out(archive, name, Path(work))
            _reserve(repository, checkpoint, [n for n in taken_out if n not in checkpoint.names])
            for member_name, (path, sha256) in taken_out.items():
                store.put_file(checkpoint_file(kind, checkpoint.id, member_name), path)
                hashes[member_name] = sha256
        if name not in taken_out:
            store.delete(key)
            repository.release([name])
            hashes.pop(name, None)
        names.extend(n for n in taken_out if n not in names)
    checkpoint.names, checkpoint.hashes = names, hashes
    checkpoint.content_hash = hashes.get(names[0]) if names else None


def _take_out(archive: Path, name: str, work: Path) -> dict[str, tuple[Path, str]]:
    """{base name: (local copy, sha256)} of the model file and its `.yaml`; BadRequest without a model."""
    try:
        with tarfile.open(archive, "r:") as tar:
            files = {PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile()}
            model = next((n for n in files if n.lower().endswith(MODEL_SUFFIXES) and not n.startswith(".")), None)
            if model is None:
                raise BadRequest(f"{name} is a tar archive without a model file ({', '.join(MODEL_SUFFIXES)}) in it")
            chosen = [model] + [n for n in files if n == PurePosixPath(model).stem + ".yaml"]
            return {n: _copy(tar, files[n], work / f"member-{i}") for i, n in enumerate(chosen)}
    except tarfile.TarError as error:
        raise BadRequest(f"{name} looks like a tar archive but cannot be read: {error}") from None


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> tuple[Path, str]:
    digest = hashlib.sha256()
    source = tar.extractfile(member)
    with source, dest.open("wb") as out:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            digest.update(chunk)
            out.write(chunk)
    return dest, digest.hexdigest()


def _reserve(repository: CheckpointRepository, checkpoint: Checkpoint, names: list[str]) -> None:
    try:
        repository.reserve(checkpoint.id, names)
    except NameTaken as taken:
        raise already_exists(taken.name) from None
