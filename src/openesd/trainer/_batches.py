"""Turn a batch of dataset items into UNet inputs: latents, text conditioning, SDXL time ids.

Latents and frozen text embeddings are computed once and kept on the device when allowed: on a GPU
the VAE encode and CLIP forward otherwise cost as much as a LoRA step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from openesd.trainer import _models, dataset as ds


@dataclass
class Conditioning:
    """Per-run encoders and caches; `generator` drives VAE sampling so a seed fixes every latent."""

    parts: _models.Parts
    device: Any
    generator: Any
    rng: random.Random
    config: Any
    train_text: bool
    latents: dict[tuple, Any] = field(default_factory=dict)
    texts: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def cache_text(self) -> bool:
        # A shuffled caption differs every step, and a trained encoder changes: neither can be cached.
        return not self.train_text and not self.config.shuffle_caption

    def latents_for(self, batch: list[ds.ImageItem]) -> Any:
        import torch

        return torch.cat([self._latent(item) for item in batch])

    def _latent(self, item: ds.ImageItem) -> Any:
        key = (str(item.path), item.bucket)
        if key in self.latents:
            return self.latents[key]
        latent = self._encode_image(item)
        if self.config.cache_latents:
            self.latents[key] = latent
        return latent

    def _encode_image(self, item: ds.ImageItem) -> Any:
        import torch

        pixels, _ = ds.load_pixels(item)
        vae = self.parts.vae
        with torch.no_grad():
            tensor = torch.from_numpy(pixels)[None].to(self.device, dtype=vae.dtype)
            latent = vae.encode(tensor).latent_dist.sample(generator=self.generator)
        return latent * vae.config.scaling_factor

    def text_for(self, batch: list[ds.ImageItem]) -> tuple[Any, Any]:
        """(prompt embeddings, pooled embeddings or None) for the batch's captions."""
        import torch

        captions = [self._caption(item) for item in batch]
        if not self.cache_text:
            return self._encode(captions)
        missing = sorted({c for c in captions if c not in self.texts})
        if missing:
            embeds, pooled = self._encode(missing)
            for i, caption in enumerate(missing):
                self.texts[caption] = (embeds[i : i + 1], None if pooled is None else pooled[i : i + 1])
        embeds = torch.cat([self.texts[c][0] for c in captions])
        pooled = None if self.texts[captions[0]][1] is None else torch.cat([self.texts[c][1] for c in captions])
        return embeds, pooled

    def _caption(self, item: ds.ImageItem) -> str:
        if self.config.shuffle_caption:
            return ds.shuffle_caption(item.caption, self.config.keep_tokens, self.rng)
        return item.caption

    def _encode(self, captions: list[str]) -> tuple[Any, Any]:
        import torch

        ids = _models.tokenize(self.parts, captions, self.device)
        if self.train_text:
            return _models.encode_text(self.parts, ids, self.config.clip_skip)
        with torch.no_grad():
            return _models.encode_text(self.parts, ids, self.config.clip_skip)

    def time_ids_for(self, batch: list[ds.ImageItem]) -> Any:
        """SDXL only: original size, crop offsets and target size of each image."""
        import torch

        rows = []
        for item in batch:
            original, crop = _crop_of(item)
            rows.append(_models.time_ids(original, crop, item.bucket, self.device))
        return torch.stack(rows)


def _crop_of(item: ds.ImageItem) -> tuple[tuple[int, int], tuple[int, int]]:
    """The same centre crop load_pixels takes, without decoding the image again."""
    width, height = item.bucket
    scale = max(width / item.size[0], height / item.size[1])
    resized = (max(width, round(item.size[0] * scale)), max(height, round(item.size[1] * scale)))
    return item.size, ((resized[1] - height) // 2, (resized[0] - width) // 2)
