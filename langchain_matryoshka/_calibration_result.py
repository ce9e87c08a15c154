"""What :func:`~langchain_matryoshka.calibration.calibrate` measured and chose."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CalibrationPoint:
    """Recall and cost of one funnel setting."""

    candidates: int
    prune_ratio: float
    scales: tuple[int, ...]
    recall: float
    """Mean recall@k against exact full-dimension search over the queries used."""
    recall_lower: float
    """One-sided lower confidence bound on that mean (see ``confidence``)."""
    rerank_madds: int
    """Multiply-adds per query spent reranking (sum of survivors x segment length)."""
    latency_ms: float | None = None
    """Median single-query search latency, measured for the contenders only."""
    head_params: dict[str, Any] = field(default_factory=dict)
    """Head search parameters of the point (an IVF head's ``nprobe``; else none)."""


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate` measured and chose."""

    k: int
    target_recall: float
    confidence: float
    reached: bool
    candidates: int | None
    """Chosen candidate count (None if no point reached the target)."""
    prune_ratio: float | None
    scales: tuple[int, ...] | None
    expected_recall: float | None
    """Mean recall@k of the chosen point on the queries used."""
    recall_lower: float | None
    """Its lower confidence bound: the promise, with probability ``confidence``."""
    queries: str
    """Which queries: "given", "recorded" (the store's sample of real ones) or "pseudo"."""
    n_queries: int
    pseudo_method: str | None
    """"spans", "perturbed" or "documents" when ``queries == "pseudo"``."""
    required_recall: float
    """The level the bound had to reach: the target, or stricter for pseudo-queries."""
    margin_cost: dict[str, Any] | None
    """With pseudo-queries: the point chosen without the margin and what the margin adds."""
    corpus_size: int
    seconds: float
    persisted: bool
    curve: list[CalibrationPoint] = field(default_factory=list)
    index_type: str | None = None
    """The head index the result holds for (chosen, with ``memory_budget_mb``)."""
    index_params: dict[str, Any] = field(default_factory=dict)
    head_search_params: dict[str, Any] | None = None
    """The chosen head search parameters (an IVF head's ``nprobe``)."""
    memory_budget_mb: float | None = None
    index_trials: list[dict[str, Any]] = field(default_factory=list)
    """With ``memory_budget_mb``: per head index tried, its estimate, build time, outcome."""

    @property
    def pseudo_queries(self) -> bool:
        return self.queries == "pseudo"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pseudo_queries": self.pseudo_queries}

    def table(self) -> str:
        """The curve as a markdown table (with a column per head search setting swept)."""
        head = sorted({name for p in self.curve for name in p.head_params})
        lines = [
            "| " + "".join(f"{name} | " for name in head) + "candidates | prune_ratio | scales "
            "| recall@k | lower bound | rerank madds/query | ms/query |",
            "|" + "---|" * (7 + len(head)),
        ]
        for p in self.curve:
            ms = "-" if p.latency_ms is None else f"{p.latency_ms:.1f}"
            lines.append(
                "| "
                + "".join(f"{p.head_params.get(name, '-')} | " for name in head)
                + f"{p.candidates} | {p.prune_ratio:g} | {','.join(map(str, p.scales))} | "
                f"{p.recall:.4f} | {p.recall_lower:.4f} | {p.rerank_madds:,} | {ms} |"
            )
        return "\n".join(lines)

    def summary(self) -> str:
        """What was used, promised and paid, in plain words."""
        source = {
            "given": "the queries passed in",
            "recorded": "the store's recorded sample of real queries",
            "pseudo": f"pseudo-queries made from stored documents ({self.pseudo_method}); "
            "no real queries were passed or recorded",
        }[self.queries]
        lines = [f"queries: {self.n_queries}, {source}"]
        for trial in self.index_trials:
            outcome = (
                f"reached with {trial['candidates']} candidates"
                + "".join(f", {k}={v}" for k, v in (trial["search_params"] or {}).items())
                if trial["reached"]
                else "did not reach"
            )
            lines.append(
                f"head index {trial['index_type']} {trial['index_params']}: estimated "
                f"{trial['memory_mb']:,.1f} MiB of a {self.memory_budget_mb:g} MiB budget, "
                + (f"built in {trial['build_seconds']:.0f} s, " if trial["rebuilt"] else "kept, ")
                + outcome
            )
        if not self.reached:
            lines.append(
                f"no setting reached a lower bound of {self.required_recall:.4f} on recall@"
                f"{self.k}; nothing was changed (try a larger candidate_grid or a lower target"
                + (", or a larger memory_budget_mb" if self.index_trials else "")
                + ")"
            )
            return "\n".join(lines)
        lines.append(
            f"chosen: candidates={self.candidates}, prune_ratio={self.prune_ratio:g}, "
            f"scales={list(self.scales or ())}"
            + "".join(f", {k}={v}" for k, v in (self.head_search_params or {}).items())
            + f" on a {self.index_type} head: recall@{self.k} {self.expected_recall:.4f}, "
            f"{self.confidence:.0%} lower bound {self.recall_lower:.4f} "
            f"(needed {self.required_recall:.4f} for a target of {self.target_recall})"
        )
        if self.margin_cost is not None:
            cost = self.margin_cost
            lines.append(
                f"real queries missed up to {cost['miss_ratio']:g}x as often as "
                f"{self.pseudo_method} pseudo-queries where this was measured, so the bound "
                f"had to reach {self.required_recall:.4f}; without that margin the choice "
                f"would be {cost['candidates']} candidates: the margin costs "
                f"{cost['extra_candidates']:+d} candidates, "
                f"{cost['extra_madds_percent']:+.0f}% rerank multiply-adds"
            )
        if self.pseudo_queries:
            lines.append(
                "pass real queries, or record them (record_queries=1000), to calibrate on "
                "the queries this store really answers"
            )
        lines.append("persisted as the store's defaults" if self.persisted else "not persisted")
        return "\n".join(lines)
