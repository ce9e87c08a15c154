"""Prefix rotation: make any embedding model's prefixes informative. Pure numpy.

A model not trained for Matryoshka spreads information over all its dimensions, so
its first 64 dims are a poor embedding. Rotating every vector by an orthogonal basis
of principal directions fitted on the corpus (no centring: the basis diagonalises the
uncentred second moment ``X^T X``) puts the strongest directions first. Because the
basis is orthogonal, full-dimension dot products, norms and cosines are unchanged;
only the prefixes change, and they become the best low-rank view of the corpus.

Measured on SciFact with all-MiniLM-L6-v2 (../FACTS in the project): recall@10 of a
64-dim prefix against exact search rises from 0.40 to 0.65; a 64 -> 384 funnel at 256
candidates from 0.92 to 0.996. A sample of ~500 documents of the target corpus is
enough; a basis fitted on another corpus barely helps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .errors import ConfigurationError

#: Documents a basis is fitted on when the first write is larger.
DEFAULT_SAMPLE = 4096


def fit_pca_rotation(
    vectors: np.ndarray, sample: int | None = DEFAULT_SAMPLE, seed: int = 0
) -> np.ndarray:
    """An orthogonal ``[dim, dim]`` basis whose columns are the principal directions.

    Columns are sorted by decreasing energy (eigenvalue of ``X^T X`` over the sample);
    rotate with ``vectors @ basis``. Rows are L2-normalised before fitting so long
    vectors do not dominate. Fewer rows than ``dim`` still give a full orthogonal
    basis (the unseen directions come last).
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ConfigurationError(
            f"cannot fit a rotation on an array of shape {x.shape}; pass [n, dim] "
            "document embeddings with n >= 1"
        )
    if sample is not None and len(x) > sample:
        x = x[np.random.default_rng(seed).choice(len(x), sample, replace=False)]
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    moment = x.T @ x  # [dim, dim] uncentred second moment
    eigvals, eigvecs = np.linalg.eigh(moment)  # ascending
    basis = eigvecs[:, ::-1]
    # Fix each column's sign (largest-magnitude entry positive) so fits are reproducible.
    signs = np.sign(basis[np.argmax(np.abs(basis), axis=0), np.arange(basis.shape[1])])
    basis = basis * np.where(signs == 0, 1.0, signs)
    return basis.astype(np.float32)


def rotate(vectors: npt.ArrayLike, basis: np.ndarray | None) -> np.ndarray:
    """``vectors @ basis`` as float32 (``basis`` None: unchanged)."""
    v = np.asarray(vectors, dtype=np.float32)
    if basis is None:
        return v
    return v @ basis


def check_orthogonal(basis: np.ndarray, atol: float = 1e-3) -> None:
    """Raise if a stored basis is not square-orthogonal (a corrupted collection)."""
    b = np.asarray(basis, dtype=np.float64)
    if b.ndim != 2 or b.shape[0] != b.shape[1]:
        raise ConfigurationError(f"rotation basis has shape {b.shape}, expected square")
    err = float(np.abs(b.T @ b - np.eye(len(b))).max())
    if err > atol:
        raise ConfigurationError(
            f"rotation basis is not orthogonal (max error {err:.2e}); rebuild the "
            "collection with drop_old=True"
        )
