"""sd-webui-controlnet's AdaIN for `reference_adain`: the reference pass stores, at the extension's UNet
blocks, each block output's per-channel mean and variance over space; the main pass renormalises that
block's output to them, the negative rows kept by the style fidelity."""

from __future__ import annotations

from typing import Any

EPS = 1e-6  # the extension's floor under the variance
_HOOKS = "_openesd_adain_hooks"
# The extension's blocks by the original UNet's numbering (input_blocks / output_blocks), per family.
_SD_BLOCKS = ((4, 5, 7, 8, 10, 11), (0, 1, 2, 3, 4, 5, 6, 7))
_SDXL_BLOCKS = ((4, 5, 7, 8), (0, 1, 2, 3, 4, 5))


def block_weights(unet: Any) -> list[tuple[Any, float]]:
    """(module whose output is that block's output, gn_weight): the middle block 0, input blocks from 2 down,
    output blocks from 0 up (the extension's weights, doubled). Blocks a small UNet lacks are skipped."""
    inputs, outputs = _SDXL_BLOCKS if unet.config.get("addition_embed_type") == "text_time" else _SD_BLOCKS
    found = [(unet.mid_block, 0.0)]
    down, up = _input_blocks(unet), _output_blocks(unet)
    found += [(down[i], 2 * (1 - w / len(inputs))) for w, i in enumerate(inputs) if i < len(down)]
    found += [(up[i], 2 * w / len(outputs)) for w, i in enumerate(outputs) if i < len(up)]
    return found


def _input_blocks(unet: Any) -> list[Any]:
    """The diffusers modules ending each of the original UNet's input blocks (0: conv_in)."""
    blocks = [unet.conv_in]
    for block in unet.down_blocks:
        attentions = getattr(block, "attentions", None)
        blocks += [attentions[i] if attentions else resnet for i, resnet in enumerate(block.resnets)]
        if block.downsamplers:
            blocks.append(block.downsamplers[0])
    return blocks


def _output_blocks(unet: Any) -> list[Any]:
    """The same for the output blocks; a level's last block ends with its upsampler."""
    blocks = []
    for block in unet.up_blocks:
        attentions = getattr(block, "attentions", None)
        layers = [attentions[i] if attentions else resnet for i, resnet in enumerate(block.resnets)]
        if block.upsamplers:
            layers[-1] = block.upsamplers[0]
        blocks += layers
    return blocks


def renormalised(x: Any, mean: Any, var: Any, uncond_rows: Any, fidelity: float) -> Any:
    """x (B, C, H, W) with each row's channels moved to `mean`/`var`; negative rows blended back by fidelity."""
    import torch

    own_var, own_mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
    std = own_var.clamp(min=EPS) ** 0.5
    y = (x - own_mean) / std * var.clamp(min=EPS) ** 0.5 + mean
    if fidelity <= 1e-5 or uncond_rows is None or not bool(uncond_rows.any()):
        return y
    kept = y.clone()
    kept[uncond_rows] = x[uncond_rows]
    return fidelity * kept + (1.0 - fidelity) * y


def install(unet: Any, bank: Any) -> None:
    """Forward hooks on the blocks: `bank.mode` "write" stores statistics (where bank.weight > the block's
    gn_weight), "read" renormalises; `bank.gn_stored` maps a block's number to (mean, var)."""
    release(unet)
    handles = []
    for number, (module, gn_weight) in enumerate(block_weights(unet)):
        handles.append(module.register_forward_hook(_hook(number, gn_weight, bank)))
    setattr(unet, _HOOKS, handles)


def _hook(number: int, gn_weight: float, bank: Any) -> Any:
    def after(module: Any, args: Any, output: Any) -> Any:
        import torch

        x = output[0] if isinstance(output, tuple) else output
        if bank.mode == "write" and bank.adain and bank.weight > gn_weight:
            var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
            bank.gn_stored[number] = (mean, var)
        if bank.mode != "read" or number not in bank.gn_stored:
            return None
        mean, var = bank.gn_stored[number]
        y = renormalised(x.float(), mean, var, bank.uncond_rows, bank.fidelity).to(x.dtype)
        return (y, *output[1:]) if isinstance(output, tuple) else y

    return after


def release(unet: Any) -> None:
    for handle in getattr(unet, _HOOKS, None) or []:
        handle.remove()
    setattr(unet, _HOOKS, None)
