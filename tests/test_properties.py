"""Property-based tests (hypothesis) against a real Milvus Lite collection.

- Safe filters: ``filter={key: value}`` returns exactly the documents whose
  ``metadata[key] == value`` (computed in Python), whatever the key and value hold:
  quotes, backslashes, brackets, operators, NUL, unicode.
- Fuzzed writes: any surrogate-free unicode text (empty and NUL included) and any
  JSON-able metadata round-trip unchanged; anything else is refused with the package's
  own error and writes nothing.
- Fuzzed funnel settings: either a documented :class:`MatryoshkaError`, or at most
  ``k`` documents sorted by score.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_matryoshka import InvalidInputError, MatryoshkaError, MatryoshkaMilvus, make_plan

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DIM, SEARCH_DIM = 16, 4
FUNNEL_FIELDS = ("candidates", "scales", "prune_ratio")

# Any unicode but lone surrogates (not valid UTF-8; refused, see test_surrogates_are_refused).
chars = st.characters(exclude_categories=("Cs",))
nasty = st.sampled_from(
    [
        '"',
        "'",
        "\\",
        '\\"',
        "]",
        "[",
        '"]',
        " or ",
        " || ",
        "==",
        "!=",
        "\x00",
        "\n",
        "\t",
        "😀",
        "漢",
        "ü",
        "%",
        "_",
        "$",
        "{",
        "}",
        "(",
        ")",
        "metadata",
        "true",
        "1",
    ]
)
text_piece = st.one_of(st.text(chars, max_size=6), nasty)
odd_text = st.lists(text_piece, max_size=4).map("".join)
INT64 = st.integers(-(2**63), 2**63 - 1)
scalar = st.one_of(odd_text, INT64, st.integers(-3, 3), st.booleans())


def count(store: MatryoshkaMilvus) -> int:
    if store.dim is None:
        return 0
    rows = store.client.query(store.collection_name, filter="", output_fields=["count(*)"])
    return int(rows[0]["count(*)"])


def make_store(tmp_path, name: str, **kwargs) -> MatryoshkaMilvus:
    return MatryoshkaMilvus(
        DeterministicFakeEmbedding(size=DIM),
        connection_args={"uri": str(tmp_path / name)},
        search_dim=SEARCH_DIM,
        **kwargs,
    )


# ---------------------------------------------------------------- 4. safe filters


@st.composite
def filter_case(draw):
    """Documents drawing their values from a small pool, and a filter from the same pool."""
    keys = draw(st.lists(odd_text, min_size=1, max_size=3, unique=True))
    pool = draw(st.lists(scalar, min_size=1, max_size=4))
    docs = []
    for _ in range(draw(st.integers(1, 6))):
        meta = {k: draw(st.sampled_from(pool)) for k in keys if draw(st.booleans())}
        docs.append(meta)
    key = draw(st.sampled_from(keys))
    value = draw(st.one_of(st.sampled_from(pool), scalar))
    return docs, key, value


def test_dict_filters_match_python_equality_whatever_they_hold(tmp_path) -> None:
    # FLAT: an exact head search, so k >= matches returns every match
    store = make_store(tmp_path, "filters.db", index_type="FLAT")
    mirror: dict[str, dict] = {}
    ids = itertools.count()

    @SETTINGS
    @given(case=filter_case())
    def check(case) -> None:
        docs, key, value = case
        new_ids = [f"d{next(ids)}" for _ in docs]
        store.add_texts([f"text {i}" for i in new_ids], docs, ids=new_ids)
        mirror.update(zip(new_ids, docs))
        # Python equality, as Milvus Lite evaluates it (True == 1 == 1.0 there as here)
        expected = {i for i, meta in mirror.items() if key in meta and meta[key] == value}
        got = store.similarity_search("anything", k=len(mirror), filter={key: value})
        assert {d.id for d in got} == expected
        assert all(d.metadata == mirror[d.id] for d in got)
        # the same expression deletes exactly those rows; put them back afterwards
        if expected and len(mirror) % 5 == 0:
            store.delete(filter={key: value})
            assert store.get_by_ids(sorted(expected)) == []
            assert count(store) == len(mirror) - len(expected)
            back = sorted(expected)
            store.add_texts([f"text {i}" for i in back], [mirror[i] for i in back], ids=back)
        assert count(store) == len(mirror)

    check()
    store.close()


def split_literals(expr: str) -> tuple[list[str], str]:
    """Tokenise ``expr`` the way Milvus reads string literals: the decoded literals, and
    the expression with each literal replaced by ``S``."""
    escapes = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
    literals, skeleton, i = [], [], 0
    while i < len(expr):
        if expr[i] != '"':
            skeleton.append(expr[i])
            i += 1
            continue
        i, buf = i + 1, []
        while expr[i] != '"':
            if expr[i] == "\\":
                buf.append(escapes[expr[i + 1]])
                i += 2
            else:
                buf.append(expr[i])
                i += 1
        literals.append("".join(buf))
        skeleton.append("S")
        i += 1
    return literals, "".join(skeleton)


@SETTINGS
@given(key=odd_text, values=st.lists(scalar, min_size=1, max_size=3))
def test_filter_expressions_never_end_a_literal_early(key, values) -> None:
    """Pure check of the generated expression: every literal decodes back to the key or
    value it came from, and outside the literals there is only our own syntax."""
    import re

    from langchain_matryoshka._milvus import filter_to_expr

    literals, skeleton = split_literals(filter_to_expr({key: values}))
    expected = []
    for v in values:
        expected += [key] + ([v] if isinstance(v, str) else [])
    assert literals == expected
    term = r"metadata\[S\] == (S|-?\d+|true|false)"
    assert re.fullmatch(rf"\({term}( or {term})*\)", skeleton), skeleton


# ---------------------------------------------------------------- 5. fuzzed writes

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    INT64,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(chars, max_size=10),
    nasty,
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.text(chars, max_size=5), nasty), children, max_size=3),
    ),
    max_leaves=12,
)
json_meta = st.dictionaries(st.one_of(st.text(chars, max_size=6), nasty), json_value, max_size=4)


class Opaque:
    pass


not_json = st.sampled_from(
    [
        Opaque(),
        {1, 2},
        b"bytes",
        math.nan,
        -math.inf,
        2**64,
        -(2**63) - 1,
        1j,
        object(),
        "lone \ud800 surrogate",
        {"nested": {3: "int key"}},
    ]
)


@st.composite
def bad_meta(draw):
    """JSON-able metadata with one non-JSON-able value planted somewhere."""
    meta = draw(json_meta)
    bad = draw(not_json)
    where = draw(st.sampled_from(["top", "list", "dict"]))
    key = draw(st.text(chars, max_size=4))
    meta[key] = bad if where == "top" else [1, bad] if where == "list" else {"in": bad}
    return meta


def test_fuzzed_texts_and_metadata_round_trip_or_are_refused(tmp_path) -> None:
    store = make_store(tmp_path, "fuzz.db", batch_size=3, index_type="FLAT")
    ids = itertools.count()
    stored: dict[str, tuple[str, dict]] = {}

    @SETTINGS
    @given(
        texts=st.lists(st.one_of(st.text(chars, max_size=40), nasty, st.just("")), max_size=5),
        metas=st.data(),
    )
    def check(texts, metas) -> None:
        new_ids = [f"f{next(ids)}" for _ in texts]
        bad_at = metas.draw(st.one_of(st.none(), st.integers(0, max(0, len(texts) - 1))))
        metadatas = [
            metas.draw(bad_meta() if i == bad_at else json_meta) for i in range(len(texts))
        ]
        before = count(store)
        if bad_at is not None and texts:
            with pytest.raises(InvalidInputError) as exc:
                store.add_texts(texts, metadatas, ids=new_ids)
            assert f"document {new_ids[bad_at]!r}" in str(exc.value)
            assert count(store) == before
            assert store.get_by_ids(new_ids) == []
            return
        assert store.add_texts(texts, metadatas, ids=new_ids) == new_ids
        stored.update(zip(new_ids, zip(texts, metadatas)))
        assert count(store) == len(stored)
        docs = store.get_by_ids(new_ids)
        assert [d.id for d in docs] == new_ids
        for doc, text, meta in zip(docs, texts, metadatas):
            assert doc.page_content == text
            assert doc.metadata == json_round_trip(meta)

    check()
    # everything written is still there, searchable by its own text
    assert count(store) == len(stored)
    for _doc_id, (text, _) in list(stored.items())[:20]:
        if text.strip():
            hits = store.similarity_search(text, k=1, candidates=len(stored))
            assert stored[hits[0].id][0] == text  # the same text (duplicates may win)
    store.close()


def json_round_trip(value):
    """Tuples come back as lists; everything else unchanged."""
    if isinstance(value, dict):
        return {k: json_round_trip(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_round_trip(v) for v in value]
    return value


@pytest.mark.parametrize("where", ["text", "id", "metadata key", "metadata value", "query"])
def test_surrogates_are_refused_with_a_clear_error(tmp_path, where) -> None:
    store = make_store(tmp_path, "s.db")
    store.add_texts(["fine"], ids=["ok"])
    bad = "a\udc80b"
    with pytest.raises(InvalidInputError, match="lone surrogate") as exc:
        if where == "text":
            store.add_texts(["x", bad], ids=["1", "2"])
        elif where == "id":
            store.add_texts(["x", "y"], ids=["1", bad])
        elif where == "metadata key":
            store.add_texts(["x", "y"], [{}, {bad: 1}], ids=["1", "2"])
        elif where == "metadata value":
            store.add_texts(["x", "y"], [{}, {"k": [bad]}], ids=["1", "2"])
        else:
            store.similarity_search(bad)
    assert "UTF-8" in str(exc.value)
    assert count(store) == 1 and store.get_by_ids(["1", "2"]) == []


# ---------------------------------------------------------------- 5. fuzzed funnel settings

maybe_bad_int = st.one_of(st.integers(-3, 300), st.just(10**9), st.sampled_from([2.0, "4", True]))


@st.composite
def valid_funnel_settings(draw):
    """Settings the validator accepts: k >= 1, candidates >= k, scales ending at DIM."""
    k = draw(st.integers(1, 40))
    prefixes = draw(st.lists(st.integers(1, DIM - 1), unique=True, max_size=4).map(sorted))
    return {
        "k": k,
        "candidates": draw(st.one_of(st.none(), st.integers(k, 300))),
        "scales": draw(st.one_of(st.none(), st.just(prefixes + [DIM]))),
        "prune_ratio": draw(st.one_of(st.none(), st.floats(0.001, 1.0), st.just(1))),
        "via": draw(st.sampled_from(["store", "retriever", "batch", "mmr"])),
        "query": draw(st.one_of(st.text(chars, min_size=1, max_size=20), nasty)),
    }


any_funnel_settings = st.fixed_dictionaries(
    {
        "k": st.one_of(st.integers(-2, 40), st.sampled_from([0, 2.5, "3", None, False])),
        "candidates": st.one_of(st.none(), maybe_bad_int),
        "scales": st.one_of(
            st.none(),
            st.lists(st.integers(-1, DIM + 4), max_size=5).map(sorted),
            st.lists(st.integers(-1, DIM + 4), max_size=5),
            st.sampled_from([[DIM], [8, DIM], [4, 8, 12, DIM], (8, DIM), "16", [8.0, 16]]),
        ),
        "prune_ratio": st.one_of(
            st.none(),
            st.floats(-0.5, 1.5),
            st.sampled_from([1, 0, 1.0, 0.5, "0.5", math.nan, math.inf, -math.inf]),
        ),
        "via": st.sampled_from(["store", "retriever", "batch", "mmr"]),
        "query": st.one_of(st.text(chars, max_size=20), nasty),
    }
)


def test_fuzzed_funnel_settings_return_sorted_top_k_or_a_documented_error(tmp_path) -> None:
    store = make_store(tmp_path, "settings.db")
    rng = np.random.default_rng(0)
    n_docs = 150
    vectors = rng.standard_normal((n_docs, DIM)).astype(np.float32)
    store.add_embeddings(
        [f"doc {i}" for i in range(n_docs)], vectors, ids=[f"s{i}" for i in range(n_docs)]
    )
    outcomes = {"ok": 0, "refused": 0}

    @SETTINGS
    @given(case=st.one_of(valid_funnel_settings(), any_funnel_settings))
    def check(case) -> None:
        via, query = case.pop("via"), case.pop("query")
        k = case["k"]
        options = {name: v for name, v in case.items() if name != "k" and v is not None}
        try:
            if via == "store":
                result = store.similarity_search_with_score(query, k=k, **options)
            elif via == "retriever":
                retriever = store.as_retriever(search_kwargs={"k": k, **options})
                # the retriever's fields are pydantic's: lax coercion ("3" -> 3) applies
                k = retriever.k
                options.update({n: getattr(retriever, n) for n in options if n in FUNNEL_FIELDS})
                docs = retriever.invoke(query)
                result = [(d, None) for d in docs]
            elif via == "batch":
                result = store.search_batch_with_score([query, "doc 1"], k=k, **options)[0]
            else:
                docs = store.max_marginal_relevance_search(
                    query, k=k, fetch_k=max(k, 20) if isinstance(k, int) else 20, **options
                )
                result = [(d, None) for d in docs]
        except MatryoshkaError as exc:
            outcomes["refused"] += 1
            assert str(exc)  # a message, naming the value (checked case by case in test_errors)
            return
        outcomes["ok"] += 1
        assert query.strip(), "an empty query must be refused"
        plan = make_plan(
            dim=DIM,
            search_dim=SEARCH_DIM,
            k=k,
            **{n: v for n, v in options.items() if n in ("candidates", "scales", "prune_ratio")},
        )  # the store accepted it: so does the pure validator
        assert len(result) <= plan.k
        if via in ("store", "batch"):
            assert len(result) == min(plan.k, n_docs)
            scores = [s for _, s in result]
            assert all(-1.0001 <= s <= 1.0001 for s in scores)
            assert scores == sorted(scores, reverse=True)
        ids = [d.id for d, _ in result]
        assert len(set(ids)) == len(ids) and all(i.startswith("s") for i in ids)

    check()
    assert count(store) == n_docs
    print(f"\nfunnel settings: {outcomes}")
    assert outcomes["ok"] > 0 and outcomes["refused"] > 0, outcomes
    store.close()
