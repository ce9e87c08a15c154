"""The head index for a memory budget: estimates, and the index types tried in order.

Pure planning, no Milvus I/O: ``calibrate(memory_budget_mb=...)`` rebuilds the head as
each option in turn and measures it. Why this order and these settings: docs/speed.md,
"A quantized head at a million rows" (an IVF head's recall is set by ``nprobe``, the
share of lists searched; the funnel's rerank restores what SQ8 quantization loses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._indexes import Backend, pq_m
from .errors import ConfigurationError

#: Tried in this order (fastest and most accurate first); the first that fits the
#: budget and reaches the target recall is kept.
PREFERENCE = ("HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "IVF_PQ")
#: Index types whose search depth ``nprobe`` calibration chooses.
IVF_TYPES = ("IVF_FLAT", "IVF_SQ8", "IVF_PQ")
#: IVF_PQ trains 2**8 centroids per sub-space: it needs at least this many rows.
PQ_MIN_ROWS = 10_000
#: Rows per IVF list at least (k-means needs points to place each centroid).
ROWS_PER_LIST = 39


@dataclass(frozen=True)
class HeadOption:
    """One head index to try: its type, build parameters and estimated memory."""

    index_type: str
    build: dict[str, Any]
    memory_mb: float
    search_grid: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    """Search parameters swept by calibration (IVF: ``nprobe``; else the defaults)."""


def head_index_mb(rows: int, dim: int, index_type: str, build: Mapping[str, Any]) -> float:
    """Estimated memory of an index over ``rows`` vectors of ``dim`` floats (8-byte ids).

    HNSW: the vectors plus 2 * M links of 4 bytes per row on layer 0; HNSW_SQ: one byte
    per dimension plus the links; IVF_FLAT / IVF_SQ8: 4 or 1 bytes per dimension plus
    the id, and ``nlist`` float32 centroids; IVF_PQ: ``m`` codes of ``nbits`` plus the
    id, and 2**nbits float32 centroids per sub-space; FLAT: the vectors. Within 10 to 15%
    of the index files a Milvus 2.3.5 server wrote at 1M rows (docs/speed.md).
    """
    kind = index_type.upper()
    m_links = int(build.get("M", 16))
    nlist = int(build.get("nlist", 128))
    if kind in ("HNSW", "AUTOINDEX"):
        size = rows * (4 * dim + 8 * m_links)
    elif kind == "HNSW_SQ":
        size = rows * (dim + 8 * m_links)
    elif kind == "IVF_FLAT":
        size = rows * (4 * dim + 8) + nlist * 4 * dim
    elif kind == "IVF_SQ8":
        size = rows * (dim + 8) + nlist * 4 * dim
    elif kind == "IVF_PQ":
        nbits = int(build.get("nbits", 8))
        size = rows * (int(build["m"]) * nbits / 8 + 8) + 2**nbits * 4 * dim
    elif kind == "FLAT":
        size = rows * 4 * dim
    else:
        raise ConfigurationError(
            f"no memory estimate for index_type={index_type!r}; pass index_types from "
            + ", ".join(PREFERENCE)
        )
    return size / 2**20


def ivf_nlist(rows: int) -> int:
    """Lists of an IVF head: the power of two nearest sqrt(rows), >= 39 rows per list.

    (Build time grows with rows x lists: 1M rows, IVF_SQ8, 1,024 lists: 919 s on the
    2-core test machine, 128 lists: 19 s.)
    """
    nlist = 2 ** round(math.log2(max(math.sqrt(max(rows, 1)), 1)))
    while nlist > 1 and rows / nlist < ROWS_PER_LIST:
        nlist //= 2
    return max(nlist, 1)


def nprobe_grid(nlist: int, steps: int = 7) -> list[dict[str, Any]]:
    """``nprobe`` values tried on an IVF head: powers of two up to ``nlist``, ascending."""
    values = sorted({min(nlist, 2**i) for i in range(int(math.log2(max(nlist, 1))) + 1)})
    return [{"nprobe": v} for v in values[-steps:]]


def available(backend: Backend) -> tuple[str, ...]:
    """Head index types the Milvus behind ``backend`` builds (of :data:`PREFERENCE`).

    Milvus Lite: no IVF_PQ (refused); servers: HNSW_SQ from 2.6 (documented there).
    """
    if backend.lite:
        return tuple(t for t in PREFERENCE if t != "IVF_PQ")
    return tuple(t for t in PREFERENCE if t != "HNSW_SQ" or backend.at_least(2, 6))


def options(
    backend: Backend,
    rows: int,
    search_dim: int,
    budget_mb: float,
    index_types: Sequence[str] | None = None,
) -> list[HeadOption]:
    """The head indexes that fit ``budget_mb`` at ``rows``, in :data:`PREFERENCE` order.

    Raises :class:`ConfigurationError` naming each estimate when none fits.
    """
    if not (isinstance(budget_mb, (int, float)) and budget_mb > 0):
        raise ConfigurationError(
            f"memory_budget_mb={budget_mb!r} must be a positive number of MiB for the "
            "head index; pass e.g. 512"
        )
    can = available(backend)
    wanted = can if index_types is None else tuple(str(t).upper() for t in index_types)
    unknown = [t for t in wanted if t not in can]
    if unknown:
        raise ConfigurationError(
            f"index_types={list(index_types or ())!r}: {', '.join(unknown)} cannot be built "
            f"on {backend.describe()}; pass some of " + ", ".join(can)
        )
    tried = []
    fits = []
    for kind in (t for t in PREFERENCE if t in wanted):
        build: dict[str, Any] = {}
        grid: list[dict[str, Any]] = [{}]
        if kind in IVF_TYPES:
            build["nlist"] = ivf_nlist(rows)
            grid = nprobe_grid(build["nlist"])
        if kind == "IVF_PQ":
            if rows < PQ_MIN_ROWS:
                continue
            build.update(m=pq_m(search_dim), nbits=8)
        mb = head_index_mb(rows, search_dim, kind, build)
        tried.append(f"{kind} {mb:,.1f}")
        if mb <= budget_mb:
            fits.append(HeadOption(kind, build, mb, grid))
    if not fits:
        raise ConfigurationError(
            f"no head index fits memory_budget_mb={budget_mb:g} at {rows:,} rows of a "
            f"{search_dim}-dim head (estimated MiB: {'; '.join(tried) or 'none'}); pass a "
            "larger budget or make the store with a shorter search_dim"
        )
    return fits
