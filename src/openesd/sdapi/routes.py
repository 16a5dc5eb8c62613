"""`/sdapi/v1/…` and `/rembg`: the AUTOMATIC1111 WebUI's API routes (A1111 1.10's paths and shapes), thin over
the WebUI services of this package. Mounted outside the ESD API-key router: WebUI clients send no key."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from fastapi.responses import JSONResponse

from openesd.api.deps import SessionDep, SettingsDep
from openesd.auth.access import Access
from openesd.inferences.routes import Inferences
from openesd.sdapi import catalog as lists
from openesd.sdapi.auth import Generating, WebUICaller
from openesd.sdapi.catalog import Catalog
from openesd.sdapi.errors import WebUIRoute
from openesd.sdapi.jobs import FinishedJob, WebUIJobs, encoded
from openesd.sdapi.options import WebUIOptionsService
from openesd.sdapi.pnginfo import png_info
from openesd.sdapi.progress import WebUIProgress
from openesd.sdapi.repository import WebUIRepository
from openesd.sdapi.schemas import (
    ExtrasBatchRequest,
    ExtrasSingleRequest,
    GenerationRequest,
    Img2ImgRequest,
    PngInfoRequest,
    RembgRequest,
    Txt2ImgRequest,
)
from openesd.sdapi.system import CMD_FLAGS, memory

router = APIRouter(prefix="/sdapi/v1", tags=["AUTOMATIC1111 API"], route_class=WebUIRoute)
root_router = APIRouter(tags=["AUTOMATIC1111 API"], route_class=WebUIRoute)  # the WebUI's routes at the root
JOB_HEADER = "X-OpenESD-Job"  # the id of the job a call ran, to find it in the job list


async def get_access(caller: WebUICaller, settings: SettingsDep) -> Access:
    return Access.of(settings.auth_mode, caller)


async def get_catalog(session: SessionDep, access: Annotated[Access, Depends(get_access)]) -> Catalog:
    return Catalog(session, access)


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def get_options(session: SessionDep, catalog: CatalogDep) -> WebUIOptionsService:
    return WebUIOptionsService(WebUIRepository(session), catalog)


OptionsDep = Annotated[WebUIOptionsService, Depends(get_options)]


async def get_jobs(inferences: Inferences, catalog: CatalogDep, options: OptionsDep) -> WebUIJobs:
    return WebUIJobs(inferences, catalog, options)


async def get_progress(
    session: SessionDep, inferences: Inferences, access: Annotated[Access, Depends(get_access)]
) -> WebUIProgress:
    return WebUIProgress(WebUIRepository(session), inferences, access)


Jobs = Annotated[WebUIJobs, Depends(get_jobs)]
ProgressDep = Annotated[WebUIProgress, Depends(get_progress)]


def _answer(body: dict[str, Any], done: FinishedJob) -> JSONResponse:
    return JSONResponse(body, headers={JOB_HEADER: done.job_id})


def _info(done: FinishedJob) -> str:
    """The worker's info JSON string; an interrupted job's says so (the WebUI answers an interrupt with 200)."""
    if done.status == "cancelled":
        return json.dumps({"job_id": done.job_id, "interrupted": True, "message": done.message})
    return str(done.info.get("info") or "{}")


def _generated(task: str, body: GenerationRequest, caller: Generating, jobs: WebUIJobs) -> JSONResponse:
    done = jobs.generate(task, body.payload(), caller)
    images = encoded(done.images) if body.send_images else []
    return _answer({"images": images, "parameters": body.model_dump(), "info": _info(done)}, done)


@router.post("/txt2img")
def txt2img(body: Txt2ImgRequest, caller: Generating, jobs: Jobs) -> JSONResponse:
    return _generated("txt2img", body, caller, jobs)


@router.post("/img2img")
def img2img(body: Img2ImgRequest, caller: Generating, jobs: Jobs) -> JSONResponse:
    return _generated("img2img", body, caller, jobs)


@router.post("/extra-single-image")
def extra_single_image(body: ExtrasSingleRequest, caller: Generating, jobs: Jobs) -> JSONResponse:
    done = jobs.run("extra-single-image", body.payload(), {}, caller)
    image = encoded(done.images[:1])[0] if done.images and body.show_extras_results else None
    return _answer({"html_info": done.info.get("html_info") or "", "image": image}, done)


@router.post("/extra-batch-images")
def extra_batch_images(body: ExtrasBatchRequest, caller: Generating, jobs: Jobs) -> JSONResponse:
    done = jobs.run("extra-batch-images", body.payload(), {}, caller)
    images = encoded(done.images) if body.show_extras_results else []
    return _answer({"html_info": done.info.get("html_info") or "", "images": images}, done)


@root_router.post("/rembg")
def rembg(body: RembgRequest, caller: Generating, jobs: Jobs) -> JSONResponse:
    """The rembg extension's route: `{"image": base64 PNG}`."""
    done = jobs.run("rembg", body.payload(), {}, caller)
    return _answer({"image": encoded(done.images[:1])[0] if done.images else None}, done)


@root_router.get("/internal/ping")
def ping(_: WebUICaller) -> dict[str, Any]:
    """The WebUI's liveness route, which clients (SillyTavern) call to check the URL and credentials."""
    return {}


@router.post("/png-info")
def read_png_info(body: PngInfoRequest, _: WebUICaller) -> dict[str, Any]:
    return png_info(body.image)


@router.get("/progress")
def progress(caller: WebUICaller, runs: ProgressDep, skip_current_image: bool = False) -> dict[str, Any]:
    return runs.progress(caller, skip_current_image)


@router.post("/interrupt")
def interrupt(caller: Generating, runs: ProgressDep) -> dict[str, Any]:
    return runs.interrupt(caller)


@router.post("/skip")
def skip(caller: Generating, runs: ProgressDep) -> dict[str, Any]:
    """A job runs as a whole: skipping its current image ends it, as an interrupt does (decisions.md)."""
    return runs.interrupt(caller)


@router.get("/options")
def get_options_route(caller: WebUICaller, options: OptionsDep) -> dict[str, Any]:
    return options.view(caller.username)


@router.post("/options")
def set_options(changes: Annotated[dict[str, Any], Body()], caller: WebUICaller, options: OptionsDep) -> None:
    options.update(caller.username, changes)


@router.get("/cmd-flags")
def cmd_flags(_: WebUICaller) -> dict[str, Any]:
    return CMD_FLAGS


@router.get("/memory")
def memory_route(_: WebUICaller) -> dict[str, Any]:
    return memory()


@router.get("/sd-models")
def sd_models(catalog: CatalogDep) -> list[dict[str, Any]]:
    return catalog.sd_models()


@router.get("/sd-vae")
def sd_vae(catalog: CatalogDep) -> list[dict[str, Any]]:
    return catalog.sd_vae()


@router.get("/loras")
def loras(catalog: CatalogDep) -> list[dict[str, Any]]:
    return catalog.loras()


@router.get("/embeddings")
def embeddings(catalog: CatalogDep) -> dict[str, Any]:
    return catalog.embeddings()


@router.get("/upscalers")
def upscalers(catalog: CatalogDep) -> list[dict[str, Any]]:
    return catalog.upscalers()


@router.get("/samplers")
def samplers(_: WebUICaller) -> list[dict[str, Any]]:
    return lists.samplers()


@router.get("/schedulers")
def schedulers(_: WebUICaller) -> list[dict[str, Any]]:
    return lists.schedulers()


@router.get("/latent-upscale-modes")
def latent_upscale_modes(_: WebUICaller) -> list[dict[str, str]]:
    return lists.latent_upscale_modes()


@router.get("/scripts")
def scripts(_: WebUICaller) -> dict[str, list[str]]:
    return lists.scripts()


@router.get("/script-info")
def script_info(_: WebUICaller) -> list[dict[str, Any]]:
    return lists.script_info()


@router.get("/hypernetworks")
@router.get("/face-restorers")
@router.get("/prompt-styles")
def unsupported_lists(_: WebUICaller) -> list[Any]:
    """Hypernetworks, face restoration and prompt styles are not supported (decisions.md): none to list."""
    return []


@router.post("/refresh-checkpoints")
@router.post("/refresh-vae")
@router.post("/refresh-loras")
def refresh(_: WebUICaller) -> Response:
    """The lists are read from the checkpoint records on each call: nothing to reload."""
    return Response(content="null", media_type="application/json")


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
def not_served(path: str) -> JSONResponse:
    """Last: a WebUI route OpenESD does not serve (interrogate, training, extensions' own) is a 404 that says so,
    not the ESD gateway's 403."""
    message = f"/sdapi/v1/{path} is not served by OpenESD (docs/decisions.md lists the WebUI routes it serves)"
    return JSONResponse({"error": "NotFound", "detail": message, "body": "", "errors": message}, 404)


def turned_off() -> APIRouter:
    """What `/sdapi` answers when `OPENESD_SDAPI_ENABLED` is false: 404 on every path."""
    off = APIRouter(include_in_schema=False)

    @off.api_route("/sdapi/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    @off.api_route("/rembg", methods=["POST"])
    @off.api_route("/internal/ping", methods=["GET"])
    def not_found(path: str = "") -> JSONResponse:
        return JSONResponse({"detail": "Not Found: the AUTOMATIC1111 API is turned off (OPENESD_SDAPI_ENABLED)"}, 404)

    return off


def install(app: Any, enabled: bool) -> None:
    """Mount the WebUI API at the root, or its 404 stand-in when turned off."""
    if enabled:
        app.include_router(router)
        app.include_router(root_router)
    else:
        app.include_router(turned_off())
