"""Assert helpers for property tests of Spark DataFrames."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = [
    "assert_approx_rows",
    "assert_columns",
    "assert_frame_equal",
    "rows_by_key",
]


def assert_frame_equal(
    actual: DataFrame,
    expected: DataFrame | Sequence[Any],
    *,
    check_row_order: bool = False,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    ignore_nullable: bool = True,
) -> None:
    """Assert two DataFrames are equal, with float tolerance; thin wrapper of PySpark's helper.

    Parameters
    ----------
    actual, expected : DataFrame
        Frames to compare; ``expected`` may also be a list of ``Row`` objects.
    check_row_order : bool
        Compare rows in order (default: order-insensitive).
    rtol, atol : float
        Relative and absolute tolerance for floating point columns.
    ignore_nullable : bool
        Ignore differences in column nullability.
    """
    from pyspark.testing import assertDataFrameEqual

    assertDataFrameEqual(
        actual,
        expected,  # type: ignore[arg-type]
        checkRowOrder=check_row_order,
        rtol=rtol,
        atol=atol,
        ignoreNullable=ignore_nullable,
    )


def assert_columns(df: DataFrame, expected: Iterable[str], *, exact: bool = False) -> None:
    """Assert that ``df`` has the ``expected`` columns (all of them, or exactly them)."""
    actual = list(df.columns)
    wanted = list(expected)
    missing = [c for c in wanted if c not in actual]
    if missing:
        raise AssertionError(f"missing columns {missing}; the DataFrame has {actual}")
    if exact and sorted(actual) != sorted(wanted):
        extra = [c for c in actual if c not in wanted]
        raise AssertionError(f"unexpected columns {extra}; expected exactly {wanted}")


def rows_by_key(df: DataFrame, key: str | Sequence[str]) -> dict[Any, dict[str, Any]]:
    """Collect a (small) DataFrame into ``{key: row_dict}`` for comparisons in tests."""
    keys = [key] if isinstance(key, str) else list(key)
    result: dict[Any, dict[str, Any]] = {}
    for row in df.collect():
        data = row.asDict(recursive=True)
        k = data[keys[0]] if len(keys) == 1 else tuple(data[c] for c in keys)
        if k in result:
            raise AssertionError(f"duplicate key {k!r} in rows_by_key on {keys}")
        result[k] = data
    return result


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=rtol, abs_tol=atol)
    return bool(a == b)


def assert_approx_rows(
    actual: Mapping[Any, Mapping[str, Any]],
    expected: Mapping[Any, Mapping[str, Any]],
    *,
    columns: Iterable[str] | None = None,
    rtol: float = 1e-7,
    atol: float = 1e-9,
) -> None:
    """Compare keyed rows (see :func:`rows_by_key`) column by column with float tolerance.

    ``None`` only equals ``None``; NaN only equals NaN. The error lists every mismatch
    (up to 20) with its key and column.
    """
    if set(actual) != set(expected):
        only_a = sorted(map(repr, set(actual) - set(expected)))[:10]
        only_e = sorted(map(repr, set(expected) - set(actual)))[:10]
        raise AssertionError(f"keys differ: only in actual {only_a}, only in expected {only_e}")
    problems: list[str] = []
    for key, exp_row in expected.items():
        act_row = actual[key]
        cols = list(columns) if columns is not None else list(exp_row)
        for col in cols:
            if not _close(act_row.get(col), exp_row.get(col), rtol, atol):
                problems.append(
                    f"key={key!r} column={col!r}: actual {act_row.get(col)!r} "
                    f"!= expected {exp_row.get(col)!r}"
                )
    if problems:
        shown = "\n  ".join(problems[:20])
        raise AssertionError(f"{len(problems)} mismatches:\n  {shown}")
