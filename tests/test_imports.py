import pytest

import langchain_matryoshka

EXPECTED_ALL = [
    "ConfigurationError",
    "DimensionMismatchError",
    "EmbeddingError",
    "FunnelPlan",
    "FunnelRetriever",
    "InvalidInputError",
    "MatryoshkaEmbeddings",
    "MatryoshkaError",
    "MatryoshkaMilvus",
    "MatryoshkaTranslator",
    "MilvusConnectionError",
    "SchemaError",
    "StorageFullError",
    "__version__",
    "exact_top_k",
    "funnel_rerank",
    "make_plan",
]


def test_all_imports() -> None:
    assert sorted(langchain_matryoshka.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert hasattr(langchain_matryoshka, name)


def test_error_tree() -> None:
    from langchain_matryoshka import errors

    for name in (
        "ConfigurationError",
        "InvalidInputError",
        "EmbeddingError",
        "SchemaError",
        "MilvusConnectionError",
        "StorageFullError",
    ):
        assert issubclass(getattr(errors, name), errors.MatryoshkaError)
    assert not issubclass(errors.StorageFullError, errors.MilvusConnectionError)
    assert issubclass(errors.DimensionMismatchError, errors.ConfigurationError)
    assert issubclass(errors.InvalidInputError, ValueError)


def test_connection_error_is_a_deprecated_alias() -> None:
    """The former name still imports, for one release, and says what replaces it."""
    from langchain_matryoshka import MilvusConnectionError, errors

    with pytest.warns(DeprecationWarning, match="use MilvusConnectionError"):
        from langchain_matryoshka import ConnectionError as old
    assert old is MilvusConnectionError
    with pytest.warns(DeprecationWarning, match="use MilvusConnectionError"):
        assert errors.ConnectionError is MilvusConnectionError
    assert "ConnectionError" not in langchain_matryoshka.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        langchain_matryoshka.Nope  # noqa: B018


_MODULES = [
    "calibration", "evaluation", "retriever", "vectorstore", "_engine", "_async_store",
    "_milvus", "_connection", "_faults", "_quiet", "_index_upkeep", "_candidates",
    "_mmr_store", "_store_tools", "llama_index", "_llama_query", "cli",
]


@pytest.mark.parametrize("module", _MODULES)
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """No import cycle: every module imports cleanly when it is the first one loaded."""
    import subprocess
    import sys

    code = f"import importlib; importlib.import_module('langchain_matryoshka.{module}')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
