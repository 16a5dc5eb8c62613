"""The WebUI API's answers about the server itself (`cmd-flags`, `memory`): what a client may read about
this process, never a path, a key or a password."""

from __future__ import annotations

import os
from typing import Any

# A1111's command-line flags that clients read, at what they mean here: the API without the WebUI's pages,
# the models on OpenESD's workers (not in this process), authentication always on.
CMD_FLAGS: dict[str, Any] = {
    "api": True,
    "nowebui": True,
    "api_auth": None,
    "gradio_auth": None,
    "listen": False,
    "port": None,
    "medvram": False,
    "lowvram": False,
    "xformers": False,
    "no_half": False,
    "no_half_vae": False,
    "precision": "autocast",
    "skip_torch_cuda_test": True,
    "disable_safe_unpickle": False,
    "enable_insecure_extension_access": False,
    "ckpt_dir": None,
    "lora_dir": None,
    "embeddings_dir": None,
    "data_dir": "",
}


def memory() -> dict[str, Any]:
    """This API process's host memory; `cuda` says the GPUs are the workers', as A1111 does without one."""
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total, free = page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return {"ram": {"error": "unavailable on this platform"}, "cuda": {"error": "unavailable"}}
    ram = {"free": free, "used": total - free, "total": total}
    return {"ram": ram, "cuda": {"error": "unavailable: the models run on OpenESD's workers, not in the API server"}}
