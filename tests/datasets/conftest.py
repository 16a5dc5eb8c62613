"""Dataset tests: an app per test (SQLite and PostgreSQL), and the ESD client's upload flow."""

from __future__ import annotations

import io

from tests.api.conftest import ESDClient, esd, make_client  # noqa: F401  (shared fixtures)
from tests.checkpoints.conftest import put_part


def png(size=(32, 32), seed=0) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def kohya_files(count: int = 2) -> dict[str, bytes]:
    """`count` captioned images: `<n>.png` + `<n>.txt`."""
    files = {}
    for n in range(count):
        files[f"{n}.png"] = png(seed=n)
        files[f"{n}.txt"] = f"a photo of sks cat, number {n}".encode()
    return files


def create_dataset(
    esd: ESDClient,
    name: str,
    files: dict[str, bytes],
    prefix: str = "10_cat",
    user: str = "api",
    params: dict | None = None,
):
    content = [
        {"filename": f, "name": f, "type": "image" if f.endswith(".png") else "text", "params": {}} for f in files
    ]
    return esd.post(
        "/prod/datasets",
        user=user,
        json={
            "dataset_name": name,
            "content": content,
            "params": params or {"description": "cats"},
            "prefix": prefix,
            "creator": user,
        },
    )


def upload_dataset(
    esd: ESDClient, name: str, files: dict[str, bytes], prefix: str = "10_cat", enable: bool = True, user: str = "api"
) -> dict:
    """The ESD client flow: create, PUT each file to its signed URL, set `Enabled`."""
    created = create_dataset(esd, name, files, prefix, user)
    assert created.status_code == 201, created.json()
    for filename, url in created.json()["data"]["s3PresignUrl"].items():
        uploaded = put_part(esd, url, files[filename])
        assert uploaded.status_code == 200, uploaded.text
    if not enable:
        return created.json()["data"]
    enabled = esd.put(f"/prod/datasets/{name}", user=user, json={"status": "Enabled"})
    assert enabled.status_code == 200, enabled.json()
    return enabled.json()["data"]
