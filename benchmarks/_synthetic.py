"""Synthetic Matryoshka-like vectors shared by the benchmarks.

``n`` rows around ``clusters`` random centres (noise 0.8 sd), every dimension ``i``
scaled by ``1 / sqrt(1 + i / 8)``: the leading dimensions carry most of the variance,
as in a Matryoshka-trained model, and neighbours are meaningful (same cluster). Queries
are fresh draws from the same clusters.
"""

from __future__ import annotations

import numpy as np


def centres_for(dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((clusters, dim)).astype(np.float32)


def synthetic(n: int, centres: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows around ``centres`` with Matryoshka-like decaying scale; (vectors, labels)."""
    rng = np.random.default_rng(seed)
    dim = centres.shape[1]
    scale = (1.0 / np.sqrt(1.0 + np.arange(dim) / 8.0)).astype(np.float32)
    labels = rng.integers(0, len(centres), n)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 10000):
        m = min(10000, n - start)
        noise = rng.standard_normal((m, dim)).astype(np.float32)
        out[start : start + m] = (centres[labels[start : start + m]] + 0.8 * noise) * scale
    return out, labels
