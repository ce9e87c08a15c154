"""LangChain's indexing API (``index`` / ``aindex``) keeping a MatryoshkaMilvus in sync.

Real record managers: langchain-core's InMemoryRecordManager and langchain-classic's
SQLRecordManager (SQLite). The store's contents and the record manager's keys are
checked after every step, in every cleanup mode.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_classic.indexes import SQLRecordManager
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.indexing import InMemoryRecordManager, aindex, index

from langchain_matryoshka import MatryoshkaMilvus

CORPUS = [
    ("a", "alpha one"), ("a", "alpha two"),
    ("b", "beta one"), ("b", "beta two"),
    ("c", "gamma one"), ("c", "gamma two"),
]
# The re-indexed corpus: "alpha one" changed, source b deleted, "gamma two" deleted.
CHANGED = [("a", "alpha one, revised"), ("a", "alpha two"), ("c", "gamma one")]

# Texts in the store after the changed corpus, per cleanup mode (LangChain's semantics:
# incremental and scoped_full clean only the sources they see; full cleans everything
# not re-indexed; None cleans nothing).
AFTER_CHANGE = {
    None: {"alpha one", "alpha one, revised", "alpha two", "beta one", "beta two",
           "gamma one", "gamma two"},
    "incremental": {"alpha one, revised", "alpha two", "beta one", "beta two", "gamma one"},
    "scoped_full": {"alpha one, revised", "alpha two", "beta one", "beta two", "gamma one"},
    "full": {"alpha one, revised", "alpha two", "gamma one"},
}
DELETED = {None: 0, "incremental": 2, "scoped_full": 2, "full": 4}
CLEANUPS = [None, "incremental", "full", "scoped_full"]


def docs(pairs) -> list[Document]:
    return [Document(page_content=t, metadata={"source": s}) for s, t in pairs]


@pytest.fixture
def store(tmp_path) -> Iterator[MatryoshkaMilvus]:
    s = MatryoshkaMilvus(DeterministicFakeEmbedding(size=16), search_dim=4,
                         connection_args={"uri": str(tmp_path / "index.db")})
    yield s
    s.close()


def managers(tmp_path, kind: str):
    if kind == "memory":
        return InMemoryRecordManager("docs")
    return SQLRecordManager("docs", db_url=f"sqlite:///{tmp_path / 'records.db'}")


def contents(store: MatryoshkaMilvus) -> set[str]:
    return {d.page_content for d in store.search_by_metadata(limit=None)}


def check(store: MatryoshkaMilvus, manager, expected: set[str]) -> None:
    """The store holds exactly ``expected``, once each, under the manager's keys."""
    rows = store.search_by_metadata(limit=None)
    assert sorted(d.page_content for d in rows) == sorted(expected)
    assert set(store.get_pks()) == set(manager.list_keys())
    assert store.count() == len(expected)


def run_steps(store, manager, cleanup, indexer) -> list[dict]:
    kwargs = {"cleanup": cleanup, "source_id_key": "source", "key_encoder": "sha256"}
    figures = []
    figures.append(indexer(docs(CORPUS), manager, store, **kwargs))
    check(store, manager, {t for _, t in CORPUS})
    figures.append(indexer(docs(CORPUS), manager, store, **kwargs))  # unchanged
    check(store, manager, {t for _, t in CORPUS})
    figures.append(indexer(docs(CHANGED), manager, store, **kwargs))
    expected = AFTER_CHANGE[cleanup]
    if cleanup is not None:
        check(store, manager, expected)
    else:  # without cleanup the record manager keeps the old keys too
        assert contents(store) == expected and store.count() == len(expected)
    return figures


def check_figures(figures: list[dict], cleanup) -> None:
    first, again, changed = figures
    assert first == {"num_added": 6, "num_updated": 0, "num_skipped": 0, "num_deleted": 0}
    assert again == {"num_added": 0, "num_updated": 0, "num_skipped": 6, "num_deleted": 0}
    assert changed == {"num_added": 1, "num_updated": 0, "num_skipped": 2,
                       "num_deleted": DELETED[cleanup]}


class TestIndex:
    @pytest.mark.parametrize("kind", ["memory", "sql"])
    @pytest.mark.parametrize("cleanup", CLEANUPS)
    def test_index(self, store, tmp_path, kind, cleanup) -> None:
        manager = managers(tmp_path, kind)
        manager.create_schema()
        check_figures(run_steps(store, manager, cleanup, index), cleanup)

    def test_force_update_rewrites_and_counts_updates(self, store) -> None:
        manager = InMemoryRecordManager("docs")
        manager.create_schema()
        kwargs = {"cleanup": "incremental", "source_id_key": "source", "key_encoder": "sha256"}
        index(docs(CORPUS), manager, store, **kwargs)
        again = index(docs(CORPUS), manager, store, force_update=True, **kwargs)
        assert again == {"num_added": 0, "num_updated": 6, "num_skipped": 0, "num_deleted": 0}
        check(store, manager, {t for _, t in CORPUS})

    def test_ids_are_the_documents_sha256_keys(self, store) -> None:
        from langchain_core.indexing.api import _get_document_with_hash

        manager = InMemoryRecordManager("docs")
        manager.create_schema()
        index(docs(CORPUS[:2]), manager, store, cleanup="full", key_encoder="sha256")
        keys = {_get_document_with_hash(d, key_encoder="sha256").id for d in docs(CORPUS[:2])}
        assert set(store.get_pks()) == keys
        assert {d.id for d in store.get_by_ids(sorted(keys))} == keys


class TestAindex:
    @pytest.mark.parametrize("cleanup", CLEANUPS)
    async def test_aindex_memory(self, store, cleanup) -> None:
        manager = InMemoryRecordManager("docs")
        await manager.acreate_schema()

        figures = []
        kwargs = {"cleanup": cleanup, "source_id_key": "source", "key_encoder": "sha256"}
        for batch in (CORPUS, CORPUS, CHANGED):
            figures.append(await aindex(docs(batch), manager, store, **kwargs))
        check_figures(figures, cleanup)
        assert contents(store) == AFTER_CHANGE[cleanup]
        if cleanup is not None:
            assert set(await store.aget_pks()) == set(await manager.alist_keys())

    @pytest.mark.parametrize("cleanup", ["incremental", "full"])
    async def test_aindex_sql(self, store, tmp_path, cleanup) -> None:
        manager = SQLRecordManager(
            "docs", db_url=f"sqlite+aiosqlite:///{tmp_path / 'records.db'}", async_mode=True
        )
        await manager.acreate_schema()
        figures = []
        kwargs = {"cleanup": cleanup, "source_id_key": "source", "key_encoder": "sha256"}
        for batch in (CORPUS, CORPUS, CHANGED):
            figures.append(await aindex(docs(batch), manager, store, **kwargs))
        check_figures(figures, cleanup)
        assert contents(store) == AFTER_CHANGE[cleanup]
        assert set(await store.aget_pks()) == set(await manager.alist_keys())


def test_the_indexing_example_prints_langchains_figures(capsys) -> None:
    import json
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "indexing_api.py"
    runpy.run_path(str(example), run_name="__main__")
    out = json.loads(capsys.readouterr().out)
    assert out["runs"]["changed"] == {"num_added": 1, "num_updated": 0, "num_skipped": 4,
                                      "num_deleted": 2}
    assert out["store_count"] == 5 and len(out["store"]) == 5
