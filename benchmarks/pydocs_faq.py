"""Build a BEIR-format folder from the Python documentation's reST sources.

A second corpus with real queries for calibration studies, built offline from Debian's
``python3.11-doc`` package (``apt-get download python3.11-doc && dpkg-deb -x ...``):

* queries: the question headings of the Python FAQ (``faq/*.rst.txt``), written by
  people as questions ("How do I share global variables across modules?");
* corpus: passages of about ``--words`` words from the library reference, language
  reference, tutorial, how-tos and the FAQ answers (each FAQ answer is a passage of its
  own, labelled relevant to its question in ``qrels/test.tsv``).

Usage::

    python benchmarks/pydocs_faq.py SOURCES_DIR OUT_DIR [--max-docs 8000]

where SOURCES_DIR is ``usr/share/doc/python3.11/html/_sources`` of the extracted package.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{3,}\s*$")
_DIRECTIVE = re.compile(r"^\s*\.\. ")


def _clean(text: str) -> str:
    text = re.sub(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text)  # :func:`x` -> x
    text = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", text)  # `label <url>`_ -> label
    text = text.replace("``", "").replace("`", "").replace("**", "").replace("\\", "")
    return re.sub(r"\s+", " ", text).strip()


def _sections(path: Path) -> list[tuple[str, str]]:
    """(heading, body) pairs of one reST file, directives dropped."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    out, heading, body = [], "", []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _UNDERLINE.match(nxt) and not _UNDERLINE.match(line):
            out.append((heading, "\n".join(body)))
            heading, body = line.strip(), []
            i += 2
            continue
        if _UNDERLINE.match(line) or _DIRECTIVE.match(line):
            i += 1
            continue
        body.append(line)
        i += 1
    out.append((heading, "\n".join(body)))
    return [(h, b) for h, b in out if b.strip()]


def _chunks(text: str, words: int) -> list[str]:
    tokens = text.split()
    return [" ".join(tokens[s : s + words]) for s in range(0, len(tokens), words)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources")
    parser.add_argument("out")
    parser.add_argument("--words", type=int, default=120)
    parser.add_argument("--max-docs", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    src, out = Path(args.sources), Path(args.out)

    corpus, queries, qrels = [], [], []
    for path in sorted((src / "faq").glob("*.rst.txt")):
        for heading, body in _sections(path):
            answer = _clean(body)
            if heading.endswith("?") and len(answer.split()) >= 5:
                qid, did = f"q{len(queries)}", f"faq{len(queries)}"
                queries.append({"_id": qid, "text": _clean(heading)})
                corpus.append({"_id": did, "title": "", "text": _chunks(answer, args.words)[0]})
                qrels.append((qid, did))
    others = []
    for part in ("library", "reference", "tutorial", "howto"):
        for path in sorted((src / part).rglob("*.rst.txt")):
            for heading, body in _sections(path):
                for chunk in _chunks(_clean(body), args.words):
                    if len(chunk.split()) >= 20:
                        doc_id = f"{path.stem}-{len(others)}"
                        others.append({"_id": doc_id, "title": _clean(heading), "text": chunk})
    random.Random(args.seed).shuffle(others)
    corpus += others[: max(0, args.max_docs - len(corpus))]

    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w") as f:
        f.writelines(json.dumps(d) + "\n" for d in corpus)
    with (out / "queries.jsonl").open("w") as f:
        f.writelines(json.dumps(q) + "\n" for q in queries)
    with (out / "qrels" / "test.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t1\n" for q, d in qrels)
    print(f"{len(corpus)} passages, {len(queries)} queries -> {out}")


if __name__ == "__main__":
    main()
