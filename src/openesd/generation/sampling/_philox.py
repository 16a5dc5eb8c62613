"""Philox 4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"; Random123) and the
normal numbers the WebUI's "NV" randn source makes from it: on any device, the numbers an NVIDIA GPU's
`torch.randn` gives for the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Random123's philox4x32 constants: the round multipliers and the key's Weyl-sequence increments.
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)

# The WebUI's Box-Muller scales are float32 constants (2**-32, and 2**-32 * 2 pi), but it multiplies uint32
# arrays by them, which numpy computes in float64: the constants are float32 values, the arithmetic float64.
_U_SCALE = float(np.float32(2.3283064e-10))
_V_SCALE = float(np.float32(2.3283064e-10 * 6.2831855))


def philox4x32(counter: np.ndarray, key: np.ndarray, rounds: int = 10) -> np.ndarray:
    """Philox4x32-R of (4, N) uint32 counters under (2, N) uint32 keys (word 0 first); returns (4, N) uint32."""
    c0, c1, c2, c3 = (np.array(word, dtype=np.uint32, ndmin=1) for word in counter)
    k0, k1 = (np.array(word, dtype=np.uint32, ndmin=1) for word in key)
    for r in range(rounds):
        if r:
            k0, k1 = k0 + _W0, k1 + _W1  # uint32 arrays: wraps mod 2**32
        p0 = c0.astype(np.uint64) * _M0
        p1 = c2.astype(np.uint64) * _M1
        hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), p0.astype(np.uint32)
        hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), p1.astype(np.uint32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return np.stack([c0, c1, c2, c3])


def box_muller(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The first of Box-Muller's two normals from uint32 pairs, as the WebUI computes it; float32."""
    u = x.astype(np.float64) * _U_SCALE + _U_SCALE / 2  # in (0, 1): never log(0)
    v = y.astype(np.float64) * _V_SCALE + _V_SCALE / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


class PhiloxGenerator:
    """The WebUI's NV generator: each `randn` call is one Philox stream (counter word 0 = the call's offset,
    word 2 = the element's index; key = the seed's low and high 32 bits) turned into normals."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.offset = 0

    def randn(self, shape: Sequence[int]) -> np.ndarray:
        """The next `shape` standard normals (float32, C order); every call moves the offset on by one."""
        n = math.prod(shape)
        counter = np.zeros((4, n), dtype=np.uint32)
        counter[0] = self.offset
        counter[2] = np.arange(n, dtype=np.uint32)
        self.offset += 1
        seed = self.seed % 2**64
        key = np.array([[seed & 0xFFFFFFFF], [seed >> 32]], dtype=np.uint32).repeat(n, axis=1)
        words = philox4x32(counter, key)
        return box_muller(words[0], words[1]).reshape(tuple(shape))
