"""`/console`: the page and its files from inside the package, with a strict Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

STATIC = Path(__file__).parent / "static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

router = APIRouter(include_in_schema=False)


@router.get("/console")
async def console_root() -> Response:
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/{path:path}")
async def console_file(path: str, request: Request) -> Response:
    """A file of the console; a path without a file extension is the page itself (it routes with `#/…`)."""
    settings = request.app.state.settings
    if not settings.console_enabled:
        return Response(status_code=404)
    file = _static_file(path)
    if file is None:
        if Path(path).suffix:  # a missing file is a 404, never the page (a module script must not get HTML)
            return Response(status_code=404)
        file = STATIC / "index.html"
    headers = {
        "Content-Security-Policy": _policy(settings.base_url, settings.s3_endpoint_url),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",  # revalidated: a new release is picked up at the next load
    }
    return FileResponse(file, media_type=TYPES[file.suffix], headers=headers)


def _static_file(path: str) -> Path | None:
    """The file under `static/` that `path` names, never one outside it, and only of a served type."""
    if not path or path.endswith("/"):
        return None
    candidate = (STATIC / path).resolve()
    if not candidate.is_relative_to(STATIC.resolve()) or not candidate.is_file() or candidate.suffix not in TYPES:
        return None
    return candidate


def _policy(*origins: str | None) -> str:
    """Scripts, styles and fonts only from the console itself; API calls, uploads and images also to the public
    URL and the object store (signed URLs), which may be other origins."""
    extra = " ".join(sorted({_origin(url) for url in origins if url and _origin(url)}))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self'; manifest-src 'self'; "
        f"img-src 'self' data: blob: {extra}; connect-src 'self' {extra}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ).replace("  ", " ")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""
