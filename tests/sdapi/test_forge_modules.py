"""Forge's `forge_additional_modules` through the WebUI routes: the named files must be the caller's."""

from __future__ import annotations

import httpx

from tests.sdapi.conftest import PASSWORD, WebUIServer


def test_a_module_the_caller_has_no_file_of_is_a_400_naming_it(webui: WebUIServer):
    payload = {
        "prompt": "a red cube",
        "steps": 1,
        "width": 64,
        "height": 64,
        "override_settings": {"forge_additional_modules": ["/models/text_encoder/t5xxl_fp16.safetensors"]},
    }
    answer = httpx.post(f"{webui.sdapi}/txt2img", json=payload, auth=("alice", PASSWORD), timeout=60)
    assert answer.status_code == 400
    message = str(answer.json())
    assert "'/models/text_encoder/t5xxl_fp16.safetensors'" in message
    assert "neither a text_encoder nor a VAE file" in message
