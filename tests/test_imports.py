import langchain_matryoshka

EXPECTED_ALL = [
    "ConfigurationError",
    "ConnectionError",
    "DimensionMismatchError",
    "EmbeddingError",
    "FunnelPlan",
    "FunnelRetriever",
    "InvalidInputError",
    "MatryoshkaEmbeddings",
    "MatryoshkaError",
    "MatryoshkaMilvus",
    "MatryoshkaTranslator",
    "SchemaError",
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

    for name in ("ConfigurationError", "InvalidInputError", "EmbeddingError", "SchemaError",
                 "ConnectionError"):
        assert issubclass(getattr(errors, name), errors.MatryoshkaError)
    assert issubclass(errors.DimensionMismatchError, errors.ConfigurationError)
    assert issubclass(errors.InvalidInputError, ValueError)
