"""The local store's signed URLs: GET streams a stored file, PUT streams a body (or one part) to disk.

The signature in the URL is the credential, so these routes sit outside the ESD API-key rules.
With an S3 store clients talk to S3 directly and this router answers nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from openesd.api.deps import StoreDep
from openesd.errors import NotFound, OpenESDError
from openesd.storage._assembly import PlacedPart
from openesd.storage._files import CHUNK
from openesd.storage._serving import response_headers
from openesd.storage.base import ObjectStore
from openesd.storage.errors import InvalidKey, ObjectNotFound
from openesd.storage.local import LocalObjectStore, ObjectWriter

router = APIRouter(include_in_schema=False)


@router.get("/objects/{key:path}")
async def download_object(key: str, request: Request, store: StoreDep) -> Response:
    try:
        local = _local(store)
        local.verify("GET", key, dict(request.query_params))
        path = local.path_for(key)
        if not path.is_file():
            raise ObjectNotFound(f"object {key} not found")
    except OpenESDError as error:
        return _error_response(error)
    return object_response(path, key, request)


def object_response(path: Path, key: str, request: Request) -> Response:
    """The object's bytes, from a file opened before its size is read: an object replaced while it is sent (a
    job's live preview is rewritten every few model calls) goes out whole, old or new, never cut to the other's
    length (a browser drops such an image: ERR_CONTENT_LENGTH_MISMATCH)."""
    headers = response_headers(key)
    media_type = headers.pop("Content-Type")
    if "range" in request.headers:  # a player seeking in a video: Starlette's ranges read by path
        response = FileResponse(path, media_type=media_type, headers=headers)
        response.chunk_size = CHUNK
        return response
    try:
        handle = path.open("rb")
    except (FileNotFoundError, IsADirectoryError):
        return _error_response(ObjectNotFound(f"object {key} not found"))
    stat = os.fstat(handle.fileno())
    tag = hashlib.md5(f"{stat.st_mtime}-{stat.st_size}".encode(), usedforsecurity=False).hexdigest()
    headers |= {
        "Content-Length": str(stat.st_size),
        "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        "ETag": f'"{tag}"',
    }
    return StreamingResponse(_chunks(handle), media_type=media_type, headers=headers)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    # A plain iterator: Starlette reads it in the thread pool, and closes it (so the file) when the client leaves.
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


@router.put("/objects/{key:path}")
async def upload_object(key: str, request: Request, store: StoreDep) -> Response:
    try:
        local = _local(store)
        target = local.verify("PUT", key, dict(request.query_params))
        if target.upload_id is not None and target.part is not None:
            length = _content_length(request)
            writer = local.open_part_writer(key, target.upload_id, target.part, length)
        else:
            writer = local.open_writer(key)
        etag = await _receive(request, writer)
    except OpenESDError as error:
        return _error_response(error)
    except ClientDisconnect:
        return JSONResponse({"message": f"the upload of {key} was cut off"}, status_code=400)
    # S3 answers a PUT with the quoted md5 as ETag; multipart clients send it back on completion.
    return Response(status_code=200, headers={"ETag": etag})


def _content_length(request: Request) -> int | None:
    """The body's announced size (a part goes in place only when it is known), or None."""
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


async def _receive(request: Request, writer: ObjectWriter | PlacedPart) -> str:
    """Stream the body to disk off the event loop: the server's chunks are gathered (not joined: no copy)
    until 8 MiB, then written with one writev while the next 8 MiB arrive; at most 16 MiB of a body is in
    memory."""
    pending: list[bytes] = []
    size = 0
    writing: asyncio.Future[None] | None = None
    try:
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= CHUNK:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(run_in_threadpool(writer.write_chunks, pending))
                pending, size = [], 0
        if writing is not None:
            await writing
        if pending:
            await run_in_threadpool(writer.write_chunks, pending)
        return await run_in_threadpool(writer.commit)
    except BaseException:
        if writing is not None and not writing.done():
            await asyncio.wait([writing])  # the thread still writes: let it finish before the bytes go
        writer.discard()
        raise


def _local(store: ObjectStore) -> LocalObjectStore:
    if not isinstance(store, LocalObjectStore):
        raise NotFound("signed object URLs are served by the S3 store, not by this server")
    return store


def _error_response(error: OpenESDError) -> Response:
    # A key that is unsafe or outside the store is refused like a bad signature: nothing to see.
    status = 403 if isinstance(error, InvalidKey) else error.status_code
    return JSONResponse({"message": error.message}, status_code=status)
