"""Plot what the funnel buys, from the demo's JSON: recall@10 and index size vs candidates.

Left: recall@10 against exact full-dimension search as the funnel's candidate count grows,
beside full-dimension HNSW and head-only HNSW. Right: the index Milvus holds per method.

Command, from the repository root (after ``python examples/demo.py``)::

    python benchmarks/plot_funnel.py    # benchmarks/results/demo.json -> docs/img/funnel-value.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    methods = result["methods"]
    funnel = sorted(
        (row for name, row in methods.items() if name.startswith("funnel")),
        key=lambda row: row["candidates"],
    )
    cands = [row["candidates"] for row in funnel]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), width_ratios=[3, 2])
    left.plot(cands, [r["recall_at_10"] for r in funnel], "o-", color="C0", label="funnel")
    left.axhline(methods["full"]["recall_at_10"], color="C3", ls="--", label="full-dim HNSW")
    left.axhline(
        methods["head"]["recall_at_10"], color="C7", ls=":",
        label=f"head-only HNSW ({result['search_dim']} dims)",
    )  # fmt: skip
    left.set_xscale("log", base=2)
    left.set_xticks(cands, [str(c) for c in cands])
    left.set_xlabel("candidates fetched by the head search")
    left.set_ylabel("recall@10 vs exact search")
    left.legend(loc="lower right", fontsize=8)
    left.grid(alpha=0.3)

    sizes = [methods["full"]["index_mb"], methods["head"]["index_mb"], funnel[0]["index_mb"]]
    bars = right.bar(["full-dim", "head-only", "funnel"], sizes, color=["C3", "C7", "C0"])
    right.bar_label(bars, [f"{s:.2f}" for s in sizes], fontsize=8)
    right.set_ylabel("index size, MB")
    right.set_title(f"{result['passages']:,} passages", fontsize=9)
    fig.suptitle(
        f"{result['model']}, Milvus Lite, {result['queries']} queries ({result['hardware']})",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "demo.json",
        help="the demo's figures (default benchmarks/results/demo.json)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "img" / "funnel-value.png",
        help="the image (default docs/img/funnel-value.png)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    plot(json.loads(args.json.read_text(encoding="utf-8")), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
