"""How a stored object is handed to a browser: only raster images render inline, the rest downloads.

User objects are served from the API's origin (local store) or a bucket's (S3); an uploaded `x.html` or
`x.svg` rendered there would run script with that origin's rights, so it is sent as an attachment.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from urllib.parse import quote

# The image types the console displays; SVG is left out on purpose: it can carry script.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
# Nothing in a served object may load, run or reach the origin, even if a browser renders it.
CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox"


@dataclass(frozen=True)
class Serving:
    """The type and disposition an object is served with."""

    content_type: str
    disposition: str

    @property
    def inline(self) -> bool:
        return self.disposition == "inline"


def serving_for(key: str) -> Serving:
    """The type guessed from the key's extension, inline only for an image the console displays."""
    name = key.rsplit("/", 1)[-1]
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type in INLINE_TYPES:
        return Serving(content_type, "inline")
    return Serving(content_type, _attachment(name))


def response_headers(key: str) -> dict[str, str]:
    """Headers of a served object: its type and disposition, no sniffing, no active content."""
    serving = serving_for(key)
    return {
        "Content-Type": serving.content_type,
        "Content-Disposition": serving.disposition,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    }


def _attachment(name: str) -> str:
    # An ASCII fallback for old clients, the exact name in RFC 5987 form for the rest.
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
