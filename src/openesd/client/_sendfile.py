"""A part PUT to a plain-HTTP signed URL with the file handed to the kernel (`sendfile`), no Python copies.

httpx re-slices its send buffer per socket write, which costs more than the copy itself for large parts;
over TLS or a proxy the part goes through httpx as before.
"""

from __future__ import annotations

import http.client
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from openesd.client._transport import ESDError

SLICE = 8 << 20  # progress is reported once per slice
TIMEOUT_S = 600.0


def direct(url: str) -> bool:
    """Only plain HTTP without a proxy in the way: then the socket is ours to sendfile on."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    return not urllib.request.getproxies().get("http") or bool(urllib.request.proxy_bypass(parts.hostname))


def put_range(url: str, path: str, start: int, length: int, sent: Callable[[int], None]) -> str:
    """PUT bytes [start, start + length) of `path` to `url`; the answer's ETag, or ESDError (status 0 when
    the connection failed, so the caller retries)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=TIMEOUT_S)
    try:
        connection.putrequest("PUT", f"{parts.path}?{parts.query}" if parts.query else parts.path)
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        with open(path, "rb") as source:
            _send(connection, source, start, length, sent)
        response = connection.getresponse()
        body = response.read()
    except OSError as error:  # http.client's own errors are OSErrors or HTTPException
        raise ESDError(0, f"{type(error).__name__}: {error}") from error
    except http.client.HTTPException as error:
        raise ESDError(0, f"{type(error).__name__}: {error}") from error
    finally:
        connection.close()
    if response.status >= 400:
        raise ESDError(response.status, body.decode("utf-8", "replace").strip() or response.reason)
    return response.getheader("ETag") or ""


def _send(connection: http.client.HTTPConnection, source, start: int, length: int, sent: Callable[[int], None]) -> None:
    sock = connection.sock
    if sock is None:
        raise ESDError(0, "the connection closed before the part was sent")
    offset, end = start, start + length
    while offset < end:
        count = sock.sendfile(source, offset, min(SLICE, end - offset))
        if count == 0:
            raise ESDError(0, f"{source.name} got shorter while uploading")
        offset += count
        sent(count)
