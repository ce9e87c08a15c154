"""Pseudo-queries for calibration when no real queries are known. Pure numpy and text.

A stored document is a poor stand-in for a query: it is close to itself in every
prefix, while a short question is not (on SciFact, documents as queries promised 0.99
recall at 64 candidates; real queries got 0.957 there). These make queries that behave
more like real ones:

* ``spans``: a short span of a sampled document's text (a sentence, at most
  :data:`SPAN_WORDS` words), embedded with the model's *query* prompt; the document it
  came from is left out of its truth and its results.
* ``perturbed``: a stored vector pushed away from itself by Gaussian noise until its
  cosine to its source matches the measured query-document gap (no model needed).
* ``documents``: stored vectors as they are (the old method), kept for comparison.

Which one calibration uses, and the safety margin it adds, were chosen by measurement
on queries that were not the evaluation's (see ``benchmarks/calibration_methods.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

PSEUDO_METHODS = ("spans", "perturbed", "documents")
#: Longest span, in words.
SPAN_WORDS = 24
#: Shortest sentence taken as a span; shorter ones are joined with the next.
MIN_SPAN_WORDS = 5

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def spans(texts: Sequence[str], rng: np.random.Generator) -> list[str]:
    """One query-like span per text: a random sentence, cut to ``SPAN_WORDS`` words."""
    out = []
    for text in texts:
        sentences: list[list[str]] = []
        current: list[str] = []
        for piece in _SENTENCE_END.split(text.strip()):
            current.extend(piece.split())
            if len(current) >= MIN_SPAN_WORDS:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
        words = sentences[int(rng.integers(len(sentences)))] if sentences else [text]
        if len(words) > SPAN_WORDS:
            start = int(rng.integers(len(words) - SPAN_WORDS + 1))
            words = words[start : start + SPAN_WORDS]
        out.append(" ".join(words) or text)
    return out


def perturb(vectors: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors whose cosine to their source row is about ``cosine`` ``[n, dim]``.

    ``source + s * noise`` with isotropic Gaussian noise of norm about one: the cosine
    is ``1 / sqrt(1 + s^2)``, so ``s = sqrt(1 / cosine^2 - 1)``.
    """
    v = np.asarray(vectors, dtype=np.float32)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    c = float(np.clip(cosine, 0.05, 1.0))
    scale = np.sqrt(1.0 / c**2 - 1.0)
    noise = rng.standard_normal(v.shape).astype(np.float32) / np.sqrt(v.shape[1])
    out = v + scale * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)
