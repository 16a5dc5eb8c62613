"""Tiled diffusion at the model call, as the WebUI's Tiled Diffusion extension: the latent is cut into
overlapping tiles, the UNet runs on batches of tiles, and the predictions are blended back.

The grid is the extension's: `ceil((w - overlap) / (tile - overlap))` tiles per side, spread evenly with
origins truncated to integers, the overlap capped at the smaller tile side minus 4. MultiDiffusion
averages the overlapping predictions uniformly; Mixture of Diffusers weights each tile with its
gaussian (the extension's, from albarji/mixture-of-diffusers) normalised by the sum over tiles. Every
tile gets the whole image's conditioning (SDXL's pooled text and time ids included, as the extension
repeats its `vector` conditioning); channels a pipeline concatenates to the latent (an inpainting
model's mask and masked image) are cut with it. A latent of another size than the grid's (the hires
pass) runs untiled, as in the extension. Averaging the noise prediction equals the extension's average
of the denoised prediction: with weights summing to one, `x - sigma * eps` is linear in eps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MULTIDIFFUSION, MIXTURE = "MultiDiffusion", "Mixture of Diffusers"


def splitable(width: int, height: int, tile_w: int, tile_h: int, overlap: int, factor: int = 8) -> bool:
    """The extension's check: more than one tile for this image size (pixels) and tile grid (latent units)."""
    w, h = width // factor, height // factor
    if overlap >= min(tile_w, tile_h):
        overlap = min(tile_w, tile_h) - 4
    cols = math.ceil((w - overlap) / (tile_w - overlap))
    rows = math.ceil((h - overlap) / (tile_h - overlap))
    return cols > 1 or rows > 1


def _origins(extent: int, tile: int, overlap: int) -> list[int]:
    if tile - overlap <= 0:  # the tile covers the whole side (it was capped to the latent)
        return [0]
    count = math.ceil((extent - overlap) / (tile - overlap))
    step = (extent - tile) / (count - 1) if count > 1 else 0
    return [min(int(i * step), extent - tile) for i in range(count)]


def gaussian_weights(tile_w: int, tile_h: int) -> Any:
    """Mixture of Diffusers' tile weights (h, w), as the extension computes them (variance 0.01 of the
    tile width on both axes; the x midpoint is (w - 1) / 2, the y midpoint h / 2)."""
    import numpy as np
    import torch

    def profile(n: int, midpoint: float) -> Any:
        x = np.arange(n, dtype=np.float64)
        return np.exp(-((x - midpoint) ** 2) / (tile_w * tile_w) / (2 * 0.01)) / np.sqrt(2 * np.pi * 0.01)

    return torch.from_numpy(np.outer(profile(tile_h, tile_h / 2), profile(tile_w, (tile_w - 1) / 2))).float()


@dataclass
class TileGrid:
    """The tiles of one latent size: boxes (x, y, w, h) in latent pixels, batched, with blend weights."""

    width: int  # latent
    height: int
    tile_w: int
    tile_h: int
    batches: list[list[tuple[int, int]]]  # tile origins (x, y), row by row, in tile batches
    method: str

    @classmethod
    def build(
        cls, width: int, height: int, tile_w: int, tile_h: int, overlap: int, batch: int, method: str
    ) -> TileGrid:
        """The extension's `init_grid_bbox`: tiles capped to the latent, overlap capped, optimal batches."""
        overlap = max(0, min(overlap, min(tile_w, tile_h) - 4))
        tile_w, tile_h = min(tile_w, width), min(tile_h, height)
        boxes = [(x, y) for y in _origins(height, tile_h, overlap) for x in _origins(width, tile_w, overlap)]
        count = math.ceil(len(boxes) / batch)
        size = math.ceil(len(boxes) / count)
        batches = [boxes[i * size : (i + 1) * size] for i in range(count)]
        return cls(width, height, tile_w, tile_h, batches, method)

    @property
    def tiles(self) -> list[tuple[int, int]]:
        return [box for batch in self.batches for box in batch]

    def tile_weights(self) -> Any:
        import torch

        if self.method == MIXTURE:
            return gaussian_weights(self.tile_w, self.tile_h)
        return torch.ones(self.tile_h, self.tile_w)

    def coverage(self) -> Any:
        """The summed tile weights at each latent pixel (h, w)."""
        import torch

        total = torch.zeros(self.height, self.width)
        weights = self.tile_weights()
        for x, y in self.tiles:
            total[y : y + self.tile_h, x : x + self.tile_w] += weights
        return total


class TiledModel:
    """Calls a UNet tile batch by tile batch and blends the predictions (see the module doc)."""

    def __init__(self, grid: TileGrid) -> None:
        self.grid = grid
        self._on: dict[str, tuple[Any, list[Any]]] = {}  # per device: coverage, each tile's weight

    def __call__(self, unet: Any, x: Any, t: Any, kwargs: dict[str, Any]) -> Any:
        import torch

        grid = self.grid
        if tuple(x.shape[-2:]) != (grid.height, grid.width):
            return unet(x, t, return_dict=False, **kwargs)[0]
        coverage, weights = self._weights(x.device)
        n, h, w = x.shape[0], grid.tile_h, grid.tile_w
        out: Any = None
        done = 0
        for batch in grid.batches:
            tiles = torch.cat([x[..., y : y + h, x0 : x0 + w] for x0, y in batch])
            call = {key: _repeat(value, len(batch), n) for key, value in kwargs.items()}
            result = unet(tiles, _repeat(t, len(batch), n), return_dict=False, **call)[0]
            if out is None:  # blended in float32 whatever the model's dtype
                out = torch.zeros((n, result.shape[1], grid.height, grid.width), device=x.device)
            for i, (x0, y) in enumerate(batch):
                tile = result[i * n : (i + 1) * n].float()
                weight = weights[done + i]
                out[..., y : y + h, x0 : x0 + w] += tile if weight is None else tile * weight
            done += len(batch)
        if grid.method == MULTIDIFFUSION:
            out = torch.where(coverage > 1, out / coverage, out)
        return out.to(result.dtype)

    def _weights(self, device: Any) -> tuple[Any, list[Any]]:
        """The coverage and, for Mixture of Diffusers, each tile's gaussian rescaled by the inverse of
        the gaussians' sum (as the extension does), made once per device."""
        key = str(device)
        if key not in self._on:
            grid = self.grid
            coverage = grid.coverage()
            weights: list[Any] = [None] * len(grid.tiles)
            if grid.method == MIXTURE:
                gaussian, scale = grid.tile_weights(), 1.0 / coverage
                weights = [
                    (gaussian * scale[y : y + grid.tile_h, x0 : x0 + grid.tile_w]).to(device) for x0, y in grid.tiles
                ]
            self._on[key] = (coverage.to(device), weights)
        return self._on[key]


def _repeat(value: Any, tiles: int, batch: int) -> Any:
    """A batch-first UNet argument for `tiles` tiles of the batch, tile-major as the tiles are stacked."""
    import torch

    if tiles == 1 or value is None:
        return value
    if isinstance(value, dict):
        return {key: _repeat(v, tiles, batch) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        raise ValueError("tiled diffusion cannot cut ControlNet residuals into tiles")
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch:
        return value.repeat(tiles, *([1] * (value.ndim - 1)))
    return value
