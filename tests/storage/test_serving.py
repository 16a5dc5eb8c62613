"""Uploaded objects never render as a page: only raster images are inline, the rest downloads (issue 13)."""

from __future__ import annotations

import httpx
import pytest

PAGE = b"<html><body><script>alert(document.domain)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'


def _upload_then_fetch(store, key: str, data: bytes, uploaded_type: str) -> httpx.Response:
    put = httpx.put(store.signed_url(key, "PUT", 60), content=data, headers={"Content-Type": uploaded_type})
    assert put.status_code == 200
    response = httpx.get(store.signed_url(key, "GET", 60))
    assert response.status_code == 200
    assert response.content == data
    return response


@pytest.mark.parametrize(
    ("name", "data", "served_type"),
    [
        ("x.html", PAGE, "text/html"),
        ("x.svg", SVG, "image/svg+xml"),
        ("notes.txt", PAGE, "text/plain"),
        ("model.safetensors", b"\x00" * 16, "application/octet-stream"),
    ],
)
def test_an_uploaded_non_image_downloads_as_an_attachment(object_store, name, data, served_type):
    response = _upload_then_fetch(object_store, f"dataset/cats/{name}", data, "text/html")
    assert response.headers["content-type"].split(";")[0] == served_type
    assert response.headers["content-disposition"].startswith(f'attachment; filename="{name}"')


@pytest.mark.parametrize(
    ("name", "served_type"),
    [
        ("1.png", "image/png"),
        ("2.jpg", "image/jpeg"),
        ("3.webp", "image/webp"),
        ("4.gif", "image/gif"),
    ],
)
def test_an_uploaded_raster_image_stays_inline_with_its_own_type(object_store, name, served_type):
    # Uploaded as text/html on purpose: S3 would serve the uploader's type unless told otherwise.
    response = _upload_then_fetch(object_store, f"dataset/cats/{name}", PAGE, "text/html")
    assert response.headers["content-type"] == served_type
    assert response.headers.get("content-disposition", "inline") == "inline"


def test_an_odd_file_name_is_quoted_in_the_disposition(object_store):
    response = _upload_then_fetch(object_store, 'dataset/cats/b"ad é;x.html', PAGE, "text/html")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"b_ad___x.html\"; filename*=UTF-8''b%22ad%20%C3%A9%3Bx.html"
    )


@pytest.mark.parametrize("name", ["x.html", "x.svg", "1.png"])
def test_the_local_store_forbids_sniffing_and_active_content(store_settings, tmp_path, objects_app, name):
    from openesd.storage import open_store

    store = open_store((tmp_path / "objects").as_uri(), store_settings)
    objects_app.state.store = store
    response = _upload_then_fetch(store, f"dataset/cats/{name}", SVG, "image/svg+xml")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
