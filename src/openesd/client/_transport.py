"""HTTP to an ESD server: API key and identity headers, the ESD envelope unwrapped, errors raised."""

from __future__ import annotations

from typing import Any

import httpx

STAGE = "/prod"


class ESDError(Exception):
    """The server (or a signed URL) answered with an error; `status` 0 means no HTTP answer at all."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class JobFailed(ESDError):
    """A job, endpoint or training reached a failed state; `record` is its last server view."""

    def __init__(self, message: str, record: dict):
        super().__init__(0, message)
        self.record = record


def stage_url(base_url: str) -> str:
    """`http://h:8080`, `http://h:8080/`, `http://h:8080/prod/` all become `http://h:8080/prod`."""
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base URL {base_url!r} must start with http:// or https://")
    return url if url.endswith(STAGE) else url + STAGE


def identity_headers(api_key: str, username: str | None, token: str | None) -> dict[str, str]:
    headers = {"x-api-key": api_key}
    # A personal token names the user by itself; sending `username` too would be ignored or refused.
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif username:
        headers["username"] = username
    return headers


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.text.strip() or response.reason_phrase


class Transport:
    """One httpx client for the API and for signed object URLs (which carry no API headers)."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = stage_url(base_url)
        # ESD requires a `creator` in some bodies and ignores it; the caller's name is the honest value.
        self.creator = headers.get("username") or "token"
        self.api = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)
        self.objects = httpx.Client(timeout=timeout, transport=transport)
        # Part uploads may bypass httpx (sendfile on the socket) only when httpx would open a real socket.
        self.raw_sockets = transport is None

    def call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        """The envelope's `data` (None when absent); any non-2xx raises ESDError(status, message)."""
        return self.call_full(method, path, json=json, params=params).get("data")

    def call_full(self, method: str, path: str, *, json: Any = None, params: Any = None) -> dict:
        """The whole envelope: {statusCode, data?, message?}; an empty body (204) gives {}."""
        try:
            response = self.api.request(method, path, json=json, params=params)
        except httpx.TransportError as exc:
            raise ESDError(0, f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise ESDError(response.status_code, error_message(response))
        if not response.content:
            return {"statusCode": response.status_code}
        return response.json()

    def put_object(self, url: str, content, headers: dict[str, str] | None = None) -> httpx.Response:
        response = self.objects.put(url, content=content, headers=headers)
        if response.status_code >= 400:
            raise ESDError(response.status_code, error_message(response))
        return response

    def download(self, url: str, path) -> None:
        with self.objects.stream("GET", url) as response:
            if response.status_code >= 400:
                response.read()
                raise ESDError(response.status_code, error_message(response))
            with open(path, "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)

    def close(self) -> None:
        self.api.close()
        self.objects.close()
