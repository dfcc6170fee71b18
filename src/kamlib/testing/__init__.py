"""Testing utilities for users' own property tests of Spark KAM pipelines.

- :func:`local_spark_session`: a tuned local SparkSession (``local[2]``, 2 shuffle partitions,
  UI off, UTC), and a pytest plugin (``pytest_plugins = ["kamlib.testing.pytest_plugin"]``)
  providing a session-scoped ``spark`` fixture.
- :mod:`kamlib.testing.strategies`: hypothesis strategies (``transactions()``,
  ``survey_responses()``, ``wallets()``).
- Assert helpers built on :func:`pyspark.testing.assertDataFrameEqual`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kamlib.testing._session import TEST_SPARK_CONF, check_java, local_spark_session
from kamlib.testing.asserts import (
    assert_approx_rows,
    assert_columns,
    assert_frame_equal,
    rows_by_key,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "TEST_SPARK_CONF",
    "assert_approx_rows",
    "assert_columns",
    "assert_frame_equal",
    "check_java",
    "local_spark_session",
    "rows_by_key",
    "stack_cases",
    "to_dataframe",
]


def to_dataframe(spark: SparkSession, rows: Sequence[dict[str, Any]], schema: str) -> DataFrame:
    """Create a DataFrame from row dicts with an explicit DDL schema (works for empty lists)."""
    names = [part.strip().split()[0] for part in schema.split(",")]
    data = [tuple(row.get(name) for name in names) for row in rows]
    return spark.createDataFrame(data, schema=schema)


def stack_cases(
    cases: Sequence[Sequence[dict[str, Any]]], *, case_col: str = "case"
) -> list[dict[str, Any]]:
    """Tag the rows of many generated cases with their case number and concatenate them.

    Property tests then build ONE DataFrame and run the transformation with ``by=case_col``,
    instead of one Spark job per hypothesis example.
    """
    return [{case_col: i, **row} for i, rows in enumerate(cases) for row in rows]
