"""Is an uploaded model file whole and of the declared type? Checked at completion and after URL imports.

A safetensors or GGUF file is checked from its header and size only, so a multi-GB file is not read again.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from openesd.errors import BadRequest
from openesd.modelfiles.ggufheaders import read_gguf_header
from openesd.modelfiles.headers import InvalidModelFile, read_safetensors_header
from openesd.modelfiles.keys import FAMILY_NAMES, KIND_NAMES, example_key, family_of, kind_of
from openesd.modelfiles.torchfiles import TORCH_EXTENSIONS, container_of, torch_available, weights_only_shapes
from openesd.storage.base import ObjectStore

EXPECTED_KIND = {
    "Stable-diffusion": "checkpoint",
    "Lora": "lora",
    "ControlNet": "controlnet",
    "VAE": "vae",
    "text_encoder": "text_encoder",
}
TYPE_OF_KIND = {
    "checkpoint": "Stable-diffusion",
    "lora": "Lora",
    "controlnet": "ControlNet",
    "vae": "VAE",
    "embedding": "embeddings",
    "text_encoder": "text_encoder",
}
# Types whose files are not one of the known layouts: a file that plainly is one was sent to the wrong type.
FOREIGN_KINDS_REFUSED = ("ControlNet-annotator",)
# ADetailer's YOLO `.pt` files are pickled model objects (never unpickled here): users export them to ONNX.
ONLY_EXTENSIONS = {"ADetailer": (".onnx",)}
HEAD_BYTES = 512


class RejectedFile(BadRequest):
    """An uploaded file that cannot be used; the record keeps the reason in `params.error`."""


def check_parts(name: str, upload: dict, numbers: list[int]) -> None:
    """Every part the client was given a URL for must be completed: S3 accepts a subset, a model cannot."""
    expected = upload.get("parts_number")
    if expected is None or sorted(numbers) == list(range(1, expected + 1)):
        return
    missing = sorted(set(range(1, expected + 1)) - set(numbers))
    extra = sorted(set(numbers) - set(range(1, expected + 1)))
    detail = f"missing part(s) {', '.join(map(str, missing))}" if missing else ""
    if extra:
        detail += f"{'; ' if detail else ''}no upload URL was given for part(s) {', '.join(map(str, extra))}"
    if not detail:
        detail = "a part number is repeated"
    raise BadRequest(
        f"multi_parts_tags of {name} lists {len(numbers)} part(s) but the upload has {expected}: {detail}; "
        "send the ETag of every part"
    )


def verify_file(store: ObjectStore, key: str, name: str, checkpoint_type: str, scratch: Path) -> dict:
    """The params to record (`model_family`), or RejectedFile naming the file and what is wrong."""
    stored = store.stat(key)
    if stored is None or stored.size == 0:
        raise RejectedFile(f"{name} is empty: upload the whole file")
    extension = Path(name).suffix.lower()
    allowed = ONLY_EXTENSIONS.get(checkpoint_type)
    if allowed and extension not in allowed:
        raise RejectedFile(
            f"{name} was uploaded as {checkpoint_type}, which takes {', '.join(allowed)} files only: export a "
            f"YOLO .pt detector with `yolo export model={Path(name).stem}.pt format=onnx` and upload the .onnx"
        )
    try:
        with store.open(key) as stream:
            head = _read_upto(stream, HEAD_BYTES)
            if head[257:262] == b"ustar":
                return {}  # a legacy WebUI tar archive under the model's name: checked when it is unpacked
            if extension == ".safetensors":
                shapes = read_safetensors_header(_Replay(head, stream), stored.size).shapes
            elif extension == ".gguf":  # quantised FLUX.1 / SD 3.5 transformers: a safe format, never unpickled
                shapes = read_gguf_header(_Replay(head, stream), stored.size).shapes
            elif extension in TORCH_EXTENSIONS:
                if container_of(head) is None:
                    raise InvalidModelFile(
                        f"it is neither a torch zip archive nor a pickle (first bytes {head[:8].hex()})"
                    )
                if not torch_available():
                    return {"model_family": "unknown"}  # the worker's weights-only loader checks it at job time
                shapes = None
            else:
                return {}  # .onnx, .yaml and others: no structural check beyond non-empty
        if shapes is None:
            with _local_copy(store, key, scratch) as path:
                shapes = weights_only_shapes(path)
    except InvalidModelFile as error:
        raise RejectedFile(f"{name} is not a valid {extension} file: {error}") from None
    kind = kind_of(shapes.keys())
    _check_kind(name, checkpoint_type, kind, shapes)
    return {"model_family": family_of(kind, shapes)}


def _check_kind(name: str, checkpoint_type: str, kind: str, shapes: dict) -> None:
    expected = EXPECTED_KIND.get(checkpoint_type)
    if kind == "unknown" or kind == expected or (expected is None and checkpoint_type not in FOREIGN_KINDS_REFUSED):
        return
    family = family_of(kind, shapes)
    what = KIND_NAMES[kind] + (f" ({FAMILY_NAMES[family]})" if family != "unknown" else "")
    fix = f"; upload it as {TYPE_OF_KIND[kind]}" if kind in TYPE_OF_KIND else ""
    raise RejectedFile(
        f"{name} was uploaded as {checkpoint_type} but its keys are a {what}'s "
        f"(e.g. {example_key(shapes.keys(), kind)}){fix}"
    )


def _read_upto(stream: IO[bytes], count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = stream.read(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


class _Replay:
    """The bytes already read, then the rest of the stream."""

    def __init__(self, head: bytes, rest: IO[bytes]):
        self.head, self.rest = head, rest

    def read(self, count: int) -> bytes:
        out, self.head = self.head[:count], self.head[count:]
        return out + _read_upto(self.rest, count - len(out)) if len(out) < count else out


@contextlib.contextmanager
def _local_copy(store: ObjectStore, key: str, scratch: Path) -> Iterator[Path]:
    """The object as a local file: the local store's own file, else a temporary download."""
    uri = urlsplit(store.uri(key))
    if uri.scheme == "file":
        yield Path(unquote(uri.path))
        return
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        yield store.download(key, Path(folder) / f"{uuid.uuid4().hex}{Path(key).suffix}")
