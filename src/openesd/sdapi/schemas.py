"""Request bodies of the WebUI API, after A1111 1.10's `modules/api/models.py`: the fields clients rely on are
typed (a wrong type is FastAPI's 422); every other WebUI field passes through to the worker, which names
what it does not support. Only the fields a client sent reach the worker (its defaults are the WebUI's)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WebUIBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    def payload(self) -> dict[str, Any]:
        """The WebUI payload the worker runs: what the client sent, extra WebUI fields included."""
        return self.model_dump(exclude_unset=True)


class GenerationRequest(WebUIBody):
    """What txt2img and img2img share (StableDiffusionProcessing's API fields)."""

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    sampler_name: str | None = None
    sampler_index: str | None = None
    scheduler: str | None = None
    batch_size: int = Field(1, ge=1)
    n_iter: int = Field(1, ge=1)
    steps: int = Field(50, ge=1)
    cfg_scale: float = 7.0
    width: int = Field(512, ge=1)
    height: int = Field(512, ge=1)
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    script_name: str | None = None
    script_args: list[Any] = Field(default_factory=list)
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)
    send_images: bool = True
    save_images: bool = False


class Txt2ImgRequest(GenerationRequest):
    enable_hr: bool = False
    hr_upscaler: str | None = None
    denoising_strength: float | None = None


class Img2ImgRequest(GenerationRequest):
    init_images: list[str] = Field(min_length=1)
    mask: str | None = None
    denoising_strength: float = Field(0.75, ge=0, le=1)
    resize_mode: int = Field(0, ge=0, le=3)


class ExtrasRequest(WebUIBody):
    resize_mode: Literal[0, 1] = 0
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0, ge=0, le=1)
    codeformer_visibility: float = Field(0, ge=0, le=1)
    codeformer_weight: float = Field(0, ge=0, le=1)
    upscaling_resize: float = Field(2, gt=0)
    upscaling_resize_w: int = Field(512, ge=1)
    upscaling_resize_h: int = Field(512, ge=1)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(0, ge=0, le=1)
    upscale_first: bool = False


class ExtrasSingleRequest(ExtrasRequest):
    image: str = Field(min_length=1)


class FileData(BaseModel):
    data: str = Field(min_length=1)
    name: str


class ExtrasBatchRequest(ExtrasRequest):
    imageList: list[FileData] = Field(min_length=1)  # noqa: N815 (the WebUI's name)


class PngInfoRequest(BaseModel):
    image: str = Field(min_length=1)


class RembgRequest(WebUIBody):
    """The rembg extension's `POST /rembg` body."""

    input_image: str = Field(min_length=1)
    model: str = "u2net"
    return_mask: bool = False
    alpha_matting: bool = False
    alpha_matting_foreground_threshold: int = Field(240, ge=0, le=255)
    alpha_matting_background_threshold: int = Field(10, ge=0, le=255)
    alpha_matting_erode_size: int = Field(10, ge=0)
