"""sd-webui-controlnet's `reference_only` / `reference_adain` / `reference_adain+attn`: before each UNet call,
the reference image's latent, noised to the call's sigma, runs through the UNet storing every self-attention
input (attn) or its blocks' output statistics (adain, `_adain.py`); the main call's self-attention then also
attends to those (the "attention injection") and its blocks are renormalised to those statistics, the negative
half blended back toward the plain UNet by the style fidelity (threshold_a)."""

from __future__ import annotations

from typing import Any

from openesd.generation.adapters import _adain

# module -> (attention injection, AdaIN)
KINDS = {"reference_only": (True, False), "reference_adain": (False, True), "reference_adain+attn": (True, True)}
MODULES = tuple(KINDS)
_SAVED = "_openesd_reference_processors"
_RESIDUAL_KEYS = (  # ControlNet and T2I residuals: the extension's write pass runs the bare UNet
    "down_block_additional_residuals",
    "mid_block_additional_residual",
    "down_intrablock_additional_residuals",
)


def handles(module: str) -> bool:
    return module in MODULES


class _Bank:
    """Shared by the processors of one UNet: what the write pass stored, and what the next call does."""

    def __init__(self) -> None:
        self.mode = "off"  # "write": store attn1 inputs / block statistics; "read": use them
        self.attention, self.adain = True, False  # which of the two this unit does
        self.weight = 1.0  # the extension's attention_auto_machine_weight: blocks with attn_weight below it act
        self.fidelity = 0.5
        self.uncond_rows: Any = None  # bool per batch row of the current call
        self.stored: dict[str, Any] = {}
        self.gn_stored: dict[int, Any] = {}  # block number -> (mean, var), see _adain


class _Processor:
    """Wraps an attn1 processor; acts only as the bank says."""

    def __init__(self, inner: Any, name: str, attn_weight: float, bank: _Bank) -> None:
        self.inner, self.name, self.attn_weight, self.bank = inner, name, attn_weight, bank

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None, *args: Any, **kw: Any) -> Any:
        bank = self.bank
        if bank.mode == "write" and bank.attention and bank.weight > self.attn_weight:
            bank.stored[self.name] = hidden_states.detach().clone()
        if bank.mode != "read" or self.name not in bank.stored:
            return self.inner(attn, hidden_states, encoder_hidden_states, *args, **kw)
        import torch

        context = torch.cat([hidden_states, bank.stored[self.name]], dim=1)
        with_reference = self.inner(attn, hidden_states, context, *args, **kw)
        rows = bank.uncond_rows
        if bank.fidelity <= 1e-5 or rows is None or not bool(rows.any()):
            return with_reference
        plain = with_reference.clone()
        plain[rows] = self.inner(attn, hidden_states[rows], None, *args, **kw)
        return bank.fidelity * plain + (1.0 - bank.fidelity) * with_reference


class ReferenceAttention:
    """One reference_only unit as a `ConditionedUNet` extra (its `before_call` runs the write pass)."""

    keep_in_hires = False

    def __init__(
        self, rgb_image: Any, weight: float, start: float, end: float, fidelity: float, seed: int, module: str
    ) -> None:
        self.image, self.start, self.end, self.seed = rgb_image, start, end, seed
        self.bank = _Bank()
        self.bank.attention, self.bank.adain = KINDS[module]
        self.bank.weight, self.bank.fidelity = weight, fidelity
        self.latent: Any = None
        self.scheduler: Any = None  # the pass's sampler: its sigma at each call
        self.active = False
        self.calls = 0

    def attach(self, run: Any) -> None:
        from openesd.generation.tasks.vae import encode_mean

        self.latent = encode_mean(run.pipe, [self.image]).float()
        self.scheduler = run.scheduler
        install(run.unet.__dict__["_unet"], self.bank)  # the checkpoint's UNet inside the CFG denoiser

    def inputs(self, progress: float, which: int, batch: int) -> dict[str, Any]:
        self.active = self.start <= progress <= self.end
        return {}

    def before_call(self, unet: Any, x: Any, times: Any, kwargs: dict[str, Any], whiches: list[int]) -> None:
        """The write pass on the reference latent noised to this call's sigma (WebUI: fresh noise each call)."""
        import torch

        self.bank.stored, self.bank.gn_stored, self.bank.mode = {}, {}, "off"
        if not self.active or self.latent is None:
            return
        batch = x.shape[0] // len(whiches)
        generator = torch.Generator("cpu").manual_seed(self.seed + self.calls)
        self.calls += 1
        noise = torch.randn(self.latent.shape, generator=generator).to(self.latent.device)
        sigma = float(self.scheduler.sigma)
        reference = (self.latent + noise * sigma) / (sigma**2 + 1.0) ** 0.5
        reference = reference.to(x.device, x.dtype).expand(x.shape[0], *reference.shape[1:])
        plain = {k: v for k, v in kwargs.items() if k not in _RESIDUAL_KEYS}
        self.bank.mode = "write"
        with torch.no_grad():
            unet(reference, times, return_dict=False, **plain)
        self.bank.mode = "read"
        rows = torch.tensor([w == 0 for w in whiches for _ in range(batch)], device=x.device)
        self.bank.uncond_rows = rows

    def after_call(self) -> None:
        self.bank.stored, self.bank.gn_stored, self.bank.mode = {}, {}, "off"


def install(unet: Any, bank: _Bank) -> None:
    """Wrap every self-attention processor; blocks ordered by width (widest first) get attn_weight i / n."""
    release(unet)
    processors = dict(unet.attn_processors)
    selfs = [name for name in processors if name.endswith("attn1.processor")]
    width = {name: unet.get_submodule(name.removesuffix(".processor")).to_q.weight.shape[0] for name in selfs}
    order = sorted(selfs, key=lambda name: -width[name])
    wrapped = dict(processors)
    for i, name in enumerate(order):
        wrapped[name] = _Processor(processors[name], name, i / len(order), bank)
    setattr(unet, _SAVED, processors)
    unet.set_attn_processor(wrapped)
    _adain.install(unet, bank)


def release(unet: Any) -> None:
    _adain.release(unet)
    saved = getattr(unet, _SAVED, None)
    if saved is not None:
        unet.set_attn_processor(saved)
        setattr(unet, _SAVED, None)
