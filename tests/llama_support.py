"""Helpers for the LlamaIndex tests: a deterministic embedding and node builders."""

from __future__ import annotations

import hashlib
import re

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

DIM = 32


def _token_vector(token: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")
    scale = 1.0 / np.sqrt(1.0 + np.arange(DIM) / 4.0)  # Matryoshka-like decay
    return np.random.default_rng(seed).standard_normal(DIM) * scale


def bag_of_words(text: str) -> list[float]:
    """Sum of one fixed random vector per lower-cased word: texts sharing words are near."""
    tokens = re.findall(r"\w+", text.lower()) or ["<empty>"]
    return np.sum([_token_vector(t) for t in tokens], axis=0).astype(np.float32).tolist()


class BagOfWordsEmbedding(BaseEmbedding):
    """A real LlamaIndex ``BaseEmbedding``: deterministic, 32 dims, no model."""

    model_name: str = "bag-of-words"

    def _get_query_embedding(self, query: str) -> list[float]:
        return bag_of_words(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return bag_of_words(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return bag_of_words(text)


def exact_top(query: np.ndarray, docs: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    """Exact cosine top ``k``: row indices and scores."""
    qn = query / np.linalg.norm(query)
    dn = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    scores = dn @ qn
    order = np.argsort(-scores)[:k]
    return order.tolist(), scores[order]


def corpus_nodes(vectors: np.ndarray, n_docs: int = 4) -> list[TextNode]:
    """One node per vector, ids ``n<i>``, source documents ``d<i % n_docs>``."""
    return [
        TextNode(
            id_=f"n{i}",
            text=f"node {i}",
            metadata={"i": i, "parity": "even" if i % 2 == 0 else "odd"},
            embedding=np.asarray(v, dtype=np.float32).tolist(),
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"d{i % n_docs}")},
        )
        for i, v in enumerate(vectors)
    ]
