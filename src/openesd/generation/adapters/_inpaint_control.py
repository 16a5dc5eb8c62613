"""sd-webui-controlnet's inpaint modules: the inpaint ControlNet's control image (masked pixels at -1) and, for
`inpaint_only`, its restore of the unmasked area in the prediction (latent) and in the final pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.adapters import _control_images as images

MODULES = ("inpaint_only", "inpaint_global_harmonious", "inpaint")  # "inpaint": the older name of the second
REFUSED = {"inpaint_only+lama": "needs the LaMa weights big_lama.pt, which OpenESD does not run"}
BLUR_SIZE = 7  # the extension's control_net_inpaint_blur_sigma default: dilate then box-blur the mask by 7


@dataclass
class InpaintRestore:
    """`inpaint_only`: the unit's image (H, W, 3 uint8) where its mask (H, W float in [0, 1]) is 0, at strength
    `weight` (clipped to [0, 1]) in the latent prediction; the final pixels outside the blurred mask are the image's."""

    rgb: Any
    mask: Any
    weight: float
    keep_in_hires = False

    def attach(self, run: Any) -> None:
        """Blend the prediction toward the image's latent outside the (latent-size, dilated) mask, as the extension."""
        import torch
        from PIL import Image

        from openesd.generation.tasks.vae import encode_mean

        origin = encode_mean(run.pipe, [Image.fromarray(self.rgb)]).float()
        factor = self.rgb.shape[0] // origin.shape[-2]
        hard = torch.from_numpy((self.mask > 0.5).astype("float32"))[None, None]
        # The extension's max_pool2d((10, 10), stride 8, padding 1) for its 8x VAE, in any VAE's factor.
        latent_mask = torch.nn.functional.max_pool2d(hard, factor + 2, stride=factor, padding=1)
        keep = (1.0 - latent_mask) * max(0.0, min(1.0, self.weight))

        def restore(x: Any, denoised: Any) -> Any:
            if denoised.shape[-2:] != origin.shape[-2:]:
                return denoised  # another size (the hires pass): this unit's image does not apply
            return denoised + keep.to(denoised) * (origin.to(denoised) - denoised)

        run.scheduler.denoised_hooks.append(restore)

    def finish(self, image: Any) -> Any:
        """y = m * generated + (1 - m) * image with m the mask dilated and box-blurred by 7 pixels."""
        import cv2
        import numpy as np
        from PIL import Image

        out = np.asarray(image.convert("RGB"), dtype=np.float32)
        raw, mask = self.rgb, self.mask
        if raw.shape[:2] != out.shape[:2]:
            raw = cv2.resize(raw, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_CUBIC)
            mask = cv2.resize(mask, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_LINEAR)
        soft = cv2.dilate(mask.astype(np.float32), np.ones((BLUR_SIZE, BLUR_SIZE), dtype=np.uint8))
        soft = cv2.blur(soft, (BLUR_SIZE, BLUR_SIZE))[..., None]
        blended = soft * out + (1.0 - soft) * raw.astype(np.float32)
        return Image.fromarray(np.clip(np.round(blended), 0, 255).astype(np.uint8))


def handles(module: str) -> bool:
    return module in MODULES or module in REFUSED


def control_image(
    unit: dict[str, Any], index: int, module: str, init: tuple[Any, Any], width: int, height: int, mode: int
) -> tuple[Any, InpaintRestore | None]:
    """The control tensor (1, 3, H, W): the image in [0, 1], -1 where masked; and inpaint_only's restore.

    `init`: (init image, img2img mask) that a unit without its own image uses, as in the WebUI's inpaint tab."""
    import numpy as np
    import torch

    if module in REFUSED:
        raise UnsupportedFeature(
            f"ControlNet unit {index} module {module!r} is not supported: it {REFUSED[module]}; "
            f"supported inpaint modules: {', '.join(MODULES)}"
        )
    rgba = _image_and_mask(unit, index, *init)
    sized = np.asarray(images.fit(rgba, width, height, mode))  # no preprocessing: the mask stays in alpha
    rgb, mask = sized[..., :3], sized[..., 3].astype(np.float32) / 255.0
    hard = (mask > 0.5).astype(np.float32)[..., None]
    hint = rgb.astype(np.float32) / 255.0 * (1.0 - hard) - hard
    tensor = torch.from_numpy(hint.transpose(2, 0, 1).copy())[None]
    try:
        weight = float(unit["weight"]) if unit.get("weight") is not None else 1.0
    except (TypeError, ValueError):
        raise PayloadError(f"ControlNet unit {index} weight {unit.get('weight')!r} is not a number") from None
    restore = InpaintRestore(np.ascontiguousarray(rgb), mask, weight) if module == "inpaint_only" else None
    return tensor, restore


def _image_and_mask(unit: dict[str, Any], index: int, init_image: Any, init_mask: Any) -> Any:
    """H x W x 4 uint8: the unit's image and its mask (white = repaint) as the alpha channel."""
    import numpy as np

    from openesd.generation.images import decode_image

    raw: Any = unit.get("image") if unit.get("image") is not None else unit.get("input_image")
    mask = unit.get("mask_image") or unit.get("mask")
    if isinstance(raw, dict):  # the extension's older {"image": ..., "mask": ...} form
        raw, mask = raw.get("image"), raw.get("mask") or mask
    if not raw:
        if init_image is None:
            raise PayloadError(f"ControlNet unit {index} (inpaint) has no image, and there is no init image to use")
        image, mask_image = init_image.convert("RGB"), init_mask
    else:
        image, mask_image = decode_image(raw).convert("RGB"), decode_image(mask) if mask else None
    if mask_image is None:
        raise PayloadError(
            f"ControlNet unit {index} (inpaint) has no mask: send the unit's `mask` (white = repaint), "
            "or run it in img2img inpainting with a mask"
        )
    alpha = mask_image.convert("L").resize(image.size)
    return np.dstack([np.asarray(image), np.asarray(alpha)])
