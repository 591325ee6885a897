"""Tiled VAE decoding and encoding, as diffusers' ``AutoencoderKL`` does it with ``enable_tiling()``.

Method: the input is cut into square tiles of ``tile_in`` pixels (latent pixels when decoding), whose
origins are ``int(tile_in * (1 - overlap))`` apart, row by row; each tile goes through the graph on
its own (edge tiles are smaller), so peak memory follows the tile, not the image. Each output tile
is blended into the one above it and the one to its left over ``int(tile_out * overlap)`` rows /
columns (linear weights ``1 - k / extent`` and ``k / extent``, the neighbour's values already blended,
in place, in diffusers' order), then cropped to ``tile_out - extent`` and the crops are concatenated.
The result differs from an untiled pass (each tile sees only its part of the image); it is diffusers'
tiled result that this reproduces.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def blend_vertical(above: np.ndarray, tile: np.ndarray, extent: int) -> np.ndarray:
    """The first ``extent`` rows of ``tile`` faded in from the last rows of ``above`` (in place)."""
    extent = min(above.shape[2], tile.shape[2], extent)
    for y in range(extent):
        tile[:, :, y, :] = above[:, :, y - extent, :] * (1 - y / extent) + tile[:, :, y, :] * (y / extent)
    return tile


def blend_horizontal(left: np.ndarray, tile: np.ndarray, extent: int) -> np.ndarray:
    """The first ``extent`` columns of ``tile`` faded in from the last columns of ``left`` (in place)."""
    extent = min(left.shape[3], tile.shape[3], extent)
    for x in range(extent):
        tile[:, :, :, x] = left[:, :, :, x - extent] * (1 - x / extent) + tile[:, :, :, x] * (x / extent)
    return tile


def tiled(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tile_in: int, tile_out: int,
          overlap: float) -> np.ndarray:
    """``run`` over overlapping tiles of ``x`` [N, C, H, W], blended and stitched (see module docstring).
    Decoding: ``tile_in`` is the latent tile size, ``tile_out`` the image tile size; encoding the reverse."""
    stride = int(tile_in * (1 - overlap))
    extent = int(tile_out * overlap)
    limit = tile_out - extent
    if stride < 1:
        raise ValueError(f"tile size {tile_in} with overlap {overlap} leaves no stride between tiles")
    rows = [[np.array(run(x[:, :, i:i + tile_in, j:j + tile_in]), dtype=np.float32)
             for j in range(0, x.shape[3], stride)]
            for i in range(0, x.shape[2], stride)]
    stitched = []
    for i, row in enumerate(rows):
        crops = []
        for j, tile in enumerate(row):
            if i > 0:
                tile = blend_vertical(rows[i - 1][j], tile, extent)
            if j > 0:
                tile = blend_horizontal(row[j - 1], tile, extent)
            crops.append(tile[:, :, :limit, :limit])
        stitched.append(np.concatenate(crops, axis=3))
    return np.concatenate(stitched, axis=2)
