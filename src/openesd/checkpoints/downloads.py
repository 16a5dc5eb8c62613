"""Server-side downloads for URL imports, refusing private addresses at every redirect hop."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from openesd.errors import BadRequest

MAX_REDIRECTS = 5
CHUNK = 1024 * 1024


class DownloadError(BadRequest):
    """The URL cannot be imported; the message says why."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str


def check_public(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs, and hosts resolving to loopback/private/link-local/metadata ranges."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"URL {url} is not an http(s) URL")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 0, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise DownloadError(f"cannot resolve host {parts.hostname}: {error}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise DownloadError(
                f"URL {url} resolves to the non-public address {address}; imports from private "
                "networks are off (set OPENESD_ALLOW_PRIVATE_URL_IMPORTS=true to allow them)"
            )


def _check_peer(response: httpx.Response, url: str, allow_private: bool) -> None:
    """Check the address actually connected to, so a DNS answer that changed since is caught too."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if allow_private or not peer:
        return
    address = ipaddress.ip_address(str(peer[0]).split("%")[0])
    if not address.is_global or address.is_multicast:
        response.close()
        raise DownloadError(
            f"URL {url} connected to the non-public address {address}; imports from private "
            "networks are off (set OPENESD_ALLOW_PRIVATE_URL_IMPORTS=true to allow them)"
        )


def file_name_of(url: str, content_disposition: str | None = None) -> str:
    """The name the file will have: Content-Disposition's, else the last segment of the URL path."""
    name = ""
    if content_disposition:
        match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', content_disposition)
        name = unquote(match.group(1)) if match else ""
    name = name or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name.strip()


def _request(client: httpx.Client, method: str, url: str, allow_private: bool) -> httpx.Response:
    """One request per hop, following redirects by hand so every hop is checked."""
    for _ in range(MAX_REDIRECTS + 1):
        check_public(url, allow_private)
        request = client.build_request(method, url)
        response = client.send(request, stream=True)
        _check_peer(response, url, allow_private)
        if response.is_redirect and "location" in response.headers:
            response.close()
            url = urljoin(url, response.headers["location"])
            continue
        return response
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects from {url}")


def probe(url: str, allow_private: bool, timeout: float) -> str:
    """Check the URL answers and return the file name it serves (the synchronous part of §6.3)."""
    try:
        with httpx.Client(timeout=timeout) as client:
            response = _request(client, "HEAD", url, allow_private)
            response.close()
    except httpx.HTTPError as error:
        raise DownloadError(f"cannot reach {url}: {error}") from None
    if response.status_code >= 400 and response.status_code not in (403, 405):
        raise DownloadError(f"{url} answered HTTP {response.status_code}")
    return file_name_of(str(response.url), response.headers.get("content-disposition"))


def download(
    url: str, directory: Path, *, allow_private: bool, max_bytes: int, timeout: float,
    progress: Callable[[int, int | None], None],
) -> Downloaded:
    """Stream `url` into a temp file under `directory`, hashing as it goes; removed on failure."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=directory, suffix=".part")
    path, digest, done = Path(name), hashlib.sha256(), 0
    try:
        with os.fdopen(handle, "wb") as out, httpx.Client(timeout=timeout) as client:
            response = _request(client, "GET", url, allow_private)
            try:
                if response.status_code >= 400:
                    raise DownloadError(f"{url} answered HTTP {response.status_code}")
                total = int(response.headers["content-length"]) if "content-length" in response.headers else None
                if total is not None and total > max_bytes:
                    raise DownloadError(f"{url} is {total} bytes, over the {max_bytes}-byte import limit")
                last = 0.0
                for chunk in response.iter_bytes(CHUNK):
                    done += len(chunk)
                    if done > max_bytes:
                        raise DownloadError(f"{url} is over the {max_bytes}-byte import limit")
                    out.write(chunk)
                    digest.update(chunk)
                    if time.monotonic() - last > 1.0:
                        progress(done, total)
                        last = time.monotonic()
                if total is not None and done != total:
                    raise DownloadError(f"{url} ended after {done} of {total} bytes")
            finally:
                response.close()
        progress(done, total if total is not None else done)
        return Downloaded(path, done, digest.hexdigest())
    except httpx.HTTPError as error:
        path.unlink(missing_ok=True)
        raise DownloadError(f"download of {url} failed after {done} bytes: {error}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
