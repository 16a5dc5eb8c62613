"""Server-side downloads for URL imports. Each connection goes to an address resolved once and
checked public at that moment (never a second lookup), and every redirect hop is followed by hand."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpcore
import httpx

from openesd.checkpoints._addresses import non_public
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


class NonPublicAddress(Exception):
    """Raised from inside the connection pool; callers (`_request`, webhooks) turn it into a message naming the URL."""


def check_http_url(url: str) -> None:
    """Refuse anything but an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"URL {url} is not an http(s) URL")


def resolve_host(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address `host` resolves to, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise httpcore.ConnectError(f"cannot resolve host {host}: {error}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve host {host}: no address")
    return addresses


class _CheckedBackend(httpcore.SyncBackend):
    """Connects only to addresses it resolved and checked itself, so a DNS answer that changes after the
    check (rebinding) cannot lead a connection elsewhere. The URL is untouched: the Host header, SNI
    and certificate check keep the host name."""

    def __init__(self, allow_private: bool):
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve_host(host, port)
        refused = [] if self._allow_private else [name for a in addresses if (name := non_public(a))]
        if refused:
            raise NonPublicAddress(refused[0])
        for address in addresses[:-1]:
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError:
                continue  # the next checked address, as create_connection would
        return super().connect_tcp(str(addresses[-1]), port, timeout, local_address, socket_options)


def checked_client(allow_private: bool, timeout: float) -> httpx.Client:
    """A client whose every connection goes through `_CheckedBackend`, and never through a proxy."""
    transport = httpx.HTTPTransport()
    # httpx takes no network backend, so its pool is replaced by one with ours; the rebinding tests
    # in tests/checkpoints/test_import.py fail should httpx stop sending through `_pool`.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=_CheckedBackend(allow_private)
    )
    return httpx.Client(transport=transport, timeout=timeout, trust_env=False)


def file_name_of(url: str, content_disposition: str | None = None) -> str:
    """The name the file will have: Content-Disposition's, else the last segment of the URL path."""
    name = ""
    if content_disposition:
        match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', content_disposition)
        name = unquote(match.group(1)) if match else ""
    name = name or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name.strip()


def _request(client: httpx.Client, method: str, url: str) -> httpx.Response:
    """One request per hop, following redirects by hand so every hop's URL is checked."""
    for _ in range(MAX_REDIRECTS + 1):
        check_http_url(url)
        try:
            response = client.send(client.build_request(method, url), stream=True)
        except NonPublicAddress as address:
            raise DownloadError(
                f"URL {url} resolves to the non-public address {address}; imports from private "
                "networks are off (set OPENESD_ALLOW_PRIVATE_URL_IMPORTS=true to allow them)"
            ) from None
        if response.is_redirect and "location" in response.headers:
            response.close()
            url = urljoin(url, response.headers["location"])
            continue
        return response
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects from {url}")


def probe(url: str, allow_private: bool, timeout: float) -> str:
    """Check the URL answers and return the file name it serves (the synchronous part of §6.3)."""
    try:
        with checked_client(allow_private, timeout) as client:
            response = _request(client, "HEAD", url)
            response.close()
    except httpx.HTTPError as error:
        raise DownloadError(f"cannot reach {url}: {error}") from None
    if response.status_code >= 400 and response.status_code not in (403, 405):
        raise DownloadError(f"{url} answered HTTP {response.status_code}")
    return file_name_of(str(response.url), response.headers.get("content-disposition"))


def download(
    url: str,
    directory: Path,
    *,
    allow_private: bool,
    max_bytes: int,
    timeout: float,
    progress: Callable[[int, int | None], None],
) -> Downloaded:
    """Stream `url` into a temp file under `directory`, hashing as it goes; removed on failure."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=directory, suffix=".part")
    path, digest, done = Path(name), hashlib.sha256(), 0
    try:
        with os.fdopen(handle, "wb") as out, checked_client(allow_private, timeout) as client:
            response = _request(client, "GET", url)
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
