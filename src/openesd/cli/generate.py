"""`openesd txt2img` / `img2img`: run one job, follow its steps, save the images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from openesd.cli._output import emit_json, handles_errors
from openesd.cli._progress import step_bar
from openesd.cli import _session

Negative = Annotated[str, typer.Option("--negative", help="Negative prompt.")]
Steps = Annotated[int, typer.Option(help="Sampling steps.")]
Width = Annotated[int, typer.Option(help="Width in pixels.")]
Height = Annotated[int, typer.Option(help="Height in pixels.")]
Seed = Annotated[int, typer.Option(help="Seed; -1 picks one.")]
Sampler = Annotated[str, typer.Option(help="WebUI sampler name.")]
Cfg = Annotated[float, typer.Option(help="CFG scale.")]
Batch = Annotated[int, typer.Option(help="Images per job.")]
Model = Annotated[str, typer.Option(help="Stable-diffusion checkpoint file name.")]
Lora = Annotated[list[str] | None, typer.Option(help="LoRA as NAME:WEIGHT (repeat for several).")]
Endpoint = Annotated[str | None, typer.Option(help="Endpoint name [default: any you may use].")]
Realtime = Annotated[bool, typer.Option("--realtime", help="Use a Real-time endpoint instead of Async.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Folder for the images.")]
Json = Annotated[bool, typer.Option("--json", help="Print the finished job as JSON.")]
Scheduler = Annotated[str | None, typer.Option(help="WebUI scheduler name (Automatic, Karras, Simple, Beta, ...).")]
Vae = Annotated[str | None, typer.Option("--vae", help="VAE file name [default: the checkpoint's own].")]
TextEncoder = Annotated[
    list[str] | None,
    typer.Option("--text-encoder", help="text_encoder file a FLUX.1 / SD 3.5 checkpoint lacks (repeat for several)."),
]
Setting = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Any other WebUI payload field as KEY=VALUE, VALUE read as JSON if it parses "
        "(repeat; e.g. distilled_cfg_scale=3.5, enable_hr=true).",
    ),
]


def parse_settings(values: list[str] | None) -> dict:
    """`--set KEY=VALUE` pairs: VALUE as JSON (numbers, true/false, lists, objects), else the plain string."""
    import json

    fields = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE (e.g. distilled_cfg_scale=3.5)", param_hint="--set")
        try:
            fields[key.strip()] = json.loads(raw)
        except ValueError:
            fields[key.strip()] = raw
    return fields


def parse_loras(values: list[str] | None) -> dict[str, float]:
    loras = {}
    for value in values or []:
        name, _, weight = value.rpartition(":") if ":" in value else (value, "", "1")
        try:
            loras[name] = float(weight)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not NAME:WEIGHT (e.g. cat:0.8)", param_hint="--lora") from None
    return loras


def run(
    task: str,
    payload: dict,
    model: str,
    loras: dict[str, float],
    endpoint: str | None,
    realtime: bool,
    out: Path,
    as_json: bool,
    vae: str | None = None,
    text_encoders: list[str] | None = None,
) -> None:
    from openesd.client.payloads import lora_models

    models = {"Stable-diffusion": [model], "VAE": [vae or "Automatic"]}
    if text_encoders:
        models["text_encoder"] = list(text_encoders)
    if loras:
        models["Lora"] = lora_models(loras)
    inferences = _session.client().inferences
    with step_bar(task, lambda job: job.get("progress"), total=payload.get("steps")) as progress:
        result = inferences.run(
            task,
            payload,
            models,
            inference_type="Real-time" if realtime else "Async",
            endpoint_name=endpoint,
            out_dir=out,
            progress=progress,
        )
    if as_json:
        emit_json({**result.job, "files": [str(f) for f in result.files]})
        return
    typer.echo(f"job {result.id} succeeded; images:")
    for file in result.files:
        typer.echo(f"  {file}")


@handles_errors
def txt2img(
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    model: Model,
    negative: Negative = "",
    steps: Steps = 20,
    width: Width = 512,
    height: Height = 512,
    seed: Seed = -1,
    sampler: Sampler = "DPM++ 2M Karras",
    cfg: Cfg = 7.0,
    batch: Batch = 1,
    lora: Lora = None,
    endpoint: Endpoint = None,
    realtime: Realtime = False,
    out: Out = Path("out"),
    as_json: Json = False,
    scheduler: Scheduler = None,
    vae: Vae = None,
    text_encoder: TextEncoder = None,
    setting: Setting = None,
) -> None:
    from openesd.client.payloads import txt2img_payload

    loras = parse_loras(lora)
    payload = txt2img_payload(
        prompt,
        negative_prompt=negative,
        steps=steps,
        width=width,
        height=height,
        seed=seed,
        sampler=sampler,
        cfg_scale=cfg,
        batch_size=batch,
        loras=loras,
    )
    payload.update(_extra_fields(scheduler, setting))
    run("txt2img", payload, model, loras, endpoint, realtime, out, as_json, vae, text_encoder)


@handles_errors
def img2img(
    image: Annotated[Path, typer.Argument(help="The starting image.", exists=True, dir_okay=False)],
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    model: Model,
    denoise: Annotated[float, typer.Option(help="Denoising strength, 0..1.")] = 0.75,
    negative: Negative = "",
    steps: Steps = 20,
    width: Width = 512,
    height: Height = 512,
    seed: Seed = -1,
    sampler: Sampler = "DPM++ 2M Karras",
    cfg: Cfg = 7.0,
    batch: Batch = 1,
    lora: Lora = None,
    endpoint: Endpoint = None,
    realtime: Realtime = False,
    out: Out = Path("out"),
    as_json: Json = False,
    scheduler: Scheduler = None,
    vae: Vae = None,
    text_encoder: TextEncoder = None,
    setting: Setting = None,
) -> None:
    from openesd.client.payloads import img2img_payload

    loras = parse_loras(lora)
    payload = img2img_payload(
        image,
        prompt,
        denoising_strength=denoise,
        negative_prompt=negative,
        steps=steps,
        width=width,
        height=height,
        seed=seed,
        sampler=sampler,
        cfg_scale=cfg,
        batch_size=batch,
        loras=loras,
    )
    payload.update(_extra_fields(scheduler, setting))
    run("img2img", payload, model, loras, endpoint, realtime, out, as_json, vae, text_encoder)


def _extra_fields(scheduler: str | None, settings: list[str] | None) -> dict:
    fields = parse_settings(settings)
    if scheduler is not None:
        fields["scheduler"] = scheduler
    return fields
