"""The upscaler names the WebUI knows, without the upscalers themselves (no PIL, no torch): the API lists them."""

from __future__ import annotations

PIL_UPSCALERS = ("None", "Lanczos", "Nearest")

# The WebUI's built-in names for the Real-ESRGAN family, mapped to the file stem each one
# downloads; a user who uploads that file can keep using the name their payloads carry.
WEBUI_ALIASES = {
    "R-ESRGAN 4x+": "RealESRGAN_x4plus",
    "R-ESRGAN 4x+ Anime6B": "RealESRGAN_x4plus_anime_6B",
    "R-ESRGAN 2x+": "RealESRGAN_x2plus",
    "R-ESRGAN General 4xV3": "realesr-general-x4v3",
    "R-ESRGAN General WDN 4xV3": "realesr-general-wdn-x4v3",
    "R-ESRGAN AnimeVideo": "realesr-animevideov3",
    "ESRGAN_4x": "ESRGAN_4x",
    "SwinIR 4x": "SwinIR_4x",
}
