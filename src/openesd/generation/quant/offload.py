"""Text encoders kept off the GPU: T5-XXL alone is 9.5 GB in bf16, more than a 24 GB card can spare beside FLUX.

Modes (`text_encoder_offload`): `none` keeps them on the device; `cpu` keeps them in CPU memory and runs the
encode there (inputs moved in, outputs moved to the device): the GPU never holds them, the encode is slower;
`swap` keeps them in CPU memory and moves each to the device for its own forward only, then back: the
GPU holds one encoder at a time, for the encode only, and the copy costs a second or two per prompt.
"""

from __future__ import annotations

from typing import Any

OFFLOAD_MODES: tuple[str, ...] = ("none", "cpu", "swap")
TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")
_HOOKS = "_openesd_offload_hooks"


def offload_text_encoders(pipe: Any, mode: str, device: Any) -> None:
    """Once per loaded pipeline, after it was put on `device`: where its text encoders live and run."""
    from openesd.errors import ModelError

    if mode not in OFFLOAD_MODES:
        raise ModelError(f"unknown text_encoder_offload {mode!r}; valid: {', '.join(OFFLOAD_MODES)}")
    for name in TEXT_ENCODERS:
        encoder = getattr(pipe, name, None)
        if encoder is None:
            continue
        _remove_hooks(encoder)
        if mode == "none":
            encoder.to(device)
            continue
        encoder.to("cpu")
        hooks = _swap_hooks(encoder, device) if mode == "swap" else _cpu_hooks(encoder, device)
        setattr(encoder, _HOOKS, hooks)


def _cpu_hooks(encoder: Any, device: Any) -> list[Any]:
    """Run on the CPU: the pipeline's token ids come in on the device; the states go back to it. The encoder is
    put back on the CPU first (a no-op when it is there), should something have moved the whole pipeline."""

    def before(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        module.to("cpu")
        return _move(args, "cpu"), _move(kwargs, "cpu")

    def after(module: Any, args: tuple, kwargs: dict, output: Any) -> Any:
        return _move(output, device)

    return [
        encoder.register_forward_pre_hook(before, with_kwargs=True),
        encoder.register_forward_hook(after, with_kwargs=True),
    ]


def _swap_hooks(encoder: Any, device: Any) -> list[Any]:
    """Onto the device for the forward, back to the CPU after it (the states stay on the device)."""

    def before(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        module.to(device)
        return _move(args, device), _move(kwargs, device)

    def after(module: Any, args: tuple, kwargs: dict, output: Any) -> Any:
        module.to("cpu")
        return output

    return [
        encoder.register_forward_pre_hook(before, with_kwargs=True),
        encoder.register_forward_hook(after, with_kwargs=True),
    ]


def _remove_hooks(encoder: Any) -> None:
    for hook in getattr(encoder, _HOOKS, []):
        hook.remove()
    setattr(encoder, _HOOKS, [])


def _move(value: Any, device: Any) -> Any:
    """Tensors anywhere inside tuples, lists, dicts and transformers' ModelOutputs, moved to `device`."""
    if hasattr(value, "to") and hasattr(value, "device"):
        return value.to(device)
    if isinstance(value, dict):  # ModelOutput is an OrderedDict: rebuilt as its own class
        moved = {k: _move(v, device) for k, v in value.items()}
        return type(value)(**moved) if type(value) is not dict else moved
    if isinstance(value, (tuple, list)):
        return type(value)(_move(v, device) for v in value)
    return value
