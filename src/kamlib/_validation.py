"""Up-front validation shared by every kamlib transformation.

All checks here read only the DataFrame *schema* (no Spark job runs) and raise
:class:`kamlib.SchemaError` with a message that names the function, the column or argument,
what was expected and what was found.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import functools
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

__all__ = [
    "NPS_DETRACTOR_MAX",
    "NPS_PROMOTER_MIN",
    "TEMP_PREFIX",
    "ColumnKind",
    "any_column_name",
    "check_bands",
    "check_choice",
    "check_columns",
    "check_duration",
    "check_finite_positive",
    "check_flag",
    "check_fraction",
    "check_group_keys",
    "check_increasing_pair",
    "check_int",
    "check_name",
    "check_output_collisions",
    "check_positive",
    "check_unique_columns",
    "col",
    "column_names",
    "finite",
    "normalize_by",
    "nps_classes",
    "parse_timestamp",
    "quote",
    "require_columns",
]

ColumnKind = Literal[
    "numeric", "integer", "string", "boolean", "date", "timestamp", "temporal", "binary", "any"
]

_KIND_TEXT: dict[str, str] = {
    "numeric": "numeric",
    "integer": "an integer type",
    "string": "string",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "temporal": "date or timestamp",
    "binary": "binary",
    "any": "any type",
}

T = TypeVar("T")

#: Prefix of every temporary column kamlib adds inside a transformation. User columns that
#: start with it are renamed for the call by :func:`any_column_name`, so they never collide.
TEMP_PREFIX = "__kamlib_"

_TIMESTAMP_TEXT = "a date, a datetime or an ISO 8601 string"


def _type_name(data_type: DataType) -> str:
    return str(data_type.simpleString())


def _matches(kind: str, data_type: DataType) -> bool:
    from pyspark.sql import types as T_

    if kind == "any":
        return True
    if kind == "numeric":
        return isinstance(data_type, T_.NumericType)
    if kind == "integer":
        return isinstance(data_type, T_.IntegralType)
    if kind == "string":
        return isinstance(data_type, (T_.StringType, T_.VarcharType, T_.CharType))
    if kind == "boolean":
        return isinstance(data_type, T_.BooleanType)
    if kind == "date":
        return isinstance(data_type, T_.DateType)
    if kind == "timestamp":
        return isinstance(data_type, (T_.TimestampType, T_.TimestampNTZType))
    if kind == "temporal":
        return isinstance(data_type, (T_.DateType, T_.TimestampType, T_.TimestampNTZType))
    if kind == "binary":
        return isinstance(data_type, T_.BinaryType)
    raise ValueError(f"unknown column kind {kind!r}")  # pragma: no cover - programming error


def column_names(df: DataFrame) -> list[str]:
    """Return the top-level column names of ``df`` (reads the schema only)."""
    return [field.name for field in df.schema.fields]


def _missing_message(func: str, column: str, available: Sequence[str], arg: str | None) -> str:
    where = f" (argument {arg}=)" if arg else ""
    found = ", ".join(repr(c) for c in available) if available else "no columns at all"
    message = f"{func}(): column {column!r}{where} not found; the DataFrame has {found}"
    lowered = {c.lower(): c for c in available}
    close = difflib.get_close_matches(column, list(available), n=1, cutoff=0.6)
    if column.lower() in lowered:
        message += f". Did you mean {lowered[column.lower()]!r}?"
    elif close:
        message += f". Did you mean {close[0]!r}?"
    return message


def check_columns(
    df: DataFrame,
    func: str,
    columns: Mapping[str, ColumnKind],
    *,
    args: Mapping[str, str] | None = None,
) -> None:
    """Check that ``df`` has every column in ``columns`` with the expected kind.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        The input (only its schema is read; no Spark job runs).
    func : str
        Public function name used in messages, e.g. ``"nps"``.
    columns : Mapping[str, ColumnKind]
        Column name -> expected kind (``"numeric"``, ``"temporal"``, ``"string"``, ...).
    args : Mapping[str, str], optional
        Column name -> keyword argument that named it, to point users at the option to change.

    Raises
    ------
    SchemaError
        If a column is missing (the message lists the columns that exist, with a
        "did you mean" for near misses) or has the wrong type.
    """
    schema = {field.name: field.dataType for field in df.schema.fields}
    available = list(schema)
    arg_of = dict(args or {})
    for column, kind in columns.items():
        if column not in schema:
            raise SchemaError(
                _missing_message(func, column, available, arg_of.get(column)),
                function=func,
                argument=arg_of.get(column),
                column=column,
                expected="an existing column",
                found="no such column",
            )
        data_type = schema[column]
        if not _matches(kind, data_type):
            raise SchemaError(
                f"{func}(): column {column!r} must be {_KIND_TEXT[kind]}, "
                f"found {_type_name(data_type)}",
                function=func,
                argument=arg_of.get(column),
                column=column,
                expected=_KIND_TEXT[kind],
                found=_type_name(data_type),
            )


def require_columns(df: DataFrame, func: str, **columns: tuple[str, ColumnKind]) -> None:
    """Check columns given as ``argument_name=(column_name, kind)`` keyword pairs.

    A convenience over :func:`check_columns` so that messages name the keyword a caller
    can use to point the function at another column, e.g.
    ``require_columns(df, "nps", score_col=(score_col, "numeric"))``.
    """
    expected: dict[str, ColumnKind] = {}
    args: dict[str, str] = {}
    for arg, (column, kind) in columns.items():
        if not isinstance(column, str):
            raise SchemaError(
                f"{func}(): argument {arg}= must be a column name (str), "
                f"found {type(column).__name__}",
                function=func,
                argument=arg,
                expected="a column name (str)",
                found=type(column).__name__,
            )
        expected[column] = kind
        args[column] = arg
    check_columns(df, func, expected, args=args)


def normalize_by(func: str, by: str | Iterable[str] | None) -> list[str]:
    """Return ``by`` as a new list of column names (``None`` -> ``[]``); never mutates input."""
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    result = list(by)
    for item in result:
        if not isinstance(item, str):
            raise SchemaError(
                f"{func}(): by= must be a column name or a sequence of column names, "
                f"found an element of type {type(item).__name__}",
                function=func,
                argument="by",
                expected="a column name or a sequence of column names",
                found=f"an element of type {type(item).__name__}",
            )
    return result


def check_choice(func: str, arg: str, value: Any, choices: Any) -> Any:
    """Validate ``value`` against a ``Literal[...]`` type (or a sequence of allowed values).

    Returns the value unchanged; raises :class:`SchemaError` listing the allowed values.
    """
    allowed = typing.get_args(choices) if typing.get_origin(choices) is Literal else choices
    allowed = tuple(allowed)
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise SchemaError(
            function=func, argument=arg, expected=f"one of {listed}", found=repr(value)
        )
    return value


def check_fraction(
    func: str,
    arg: str,
    value: float,
    *,
    low: float = 0.0,
    high: float = 1.0,
    low_inclusive: bool = False,
    high_inclusive: bool = True,
) -> float:
    """Check that a numeric option lies in an interval; return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise SchemaError(function=func, argument=arg, expected="a number", found=repr(value))
    ok_low = value >= low if low_inclusive else value > low
    ok_high = value <= high if high_inclusive else value < high
    if not (ok_low and ok_high):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        raise SchemaError(
            function=func,
            argument=arg,
            expected=f"in {left}{low}, {high}{right}",
            found=repr(value),
        )
    return float(value)


def check_positive(func: str, arg: str, value: float, *, allow_zero: bool = False) -> float:
    """Check that a numeric option is positive (or non-negative); return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise SchemaError(function=func, argument=arg, expected="a number", found=repr(value))
    if value < 0 or (value == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise SchemaError(function=func, argument=arg, expected=expected, found=repr(value))
    return float(value)


def check_finite_positive(func: str, arg: str, value: float, *, allow_zero: bool = False) -> float:
    """:func:`check_positive` that also rejects infinity (horizons, durations); returns a float."""
    number = check_positive(func, arg, value, allow_zero=allow_zero)
    if not math.isfinite(number):
        expected = "a finite number " + (">= 0" if allow_zero else "> 0")
        raise SchemaError(function=func, argument=arg, expected=expected, found=repr(value))
    return number


def parse_timestamp(func: str, arg: str, value: Any) -> _dt.datetime:
    """Parse a date, datetime or ISO string into a naive UTC-wall-clock ``datetime``.

    Dates become midnight. Time-zone aware datetimes are converted to UTC and made naive,
    matching kamlib's convention that timestamps are interpreted in the session time zone
    (set ``spark.sql.session.timeZone=UTC`` for reproducible results).
    """
    if isinstance(value, _dt.datetime):
        parsed = value
    elif isinstance(value, _dt.date):
        parsed = _dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SchemaError(
                function=func, argument=arg, expected=_TIMESTAMP_TEXT, found=repr(value)
            ) from None
    else:
        raise SchemaError(
            function=func, argument=arg, expected=_TIMESTAMP_TEXT, found=type(value).__name__
        )
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return parsed


_DURATION_UNIT_SECONDS = {
    "week": 7 * 86400,
    "day": 86400,
    "hour": 3600,
    "minute": 60,
    "second": 1,
}
_DURATION_UNIT_ALIASES = {
    "weeks": "week",
    "days": "day",
    "hours": "hour",
    "minutes": "minute",
    "mins": "minute",
    "min": "minute",
    "seconds": "second",
    "secs": "second",
    "sec": "second",
}
_DURATION_PART = re.compile(r"(\d+)\s*([a-z]+)")


def check_duration(func: str, arg: str, value: Any, *, allow_zero: bool = False) -> tuple[str, int]:
    """The one duration check: ``"1 day"``, ``"2 hours 30 minutes"`` or a ``timedelta``.

    Returns the normalised Spark interval string and the duration in whole seconds (> 0, or
    >= 0 with ``allow_zero``).
    """
    if isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
        if seconds <= 0 or seconds != int(seconds):
            raise SchemaError(
                f"{func}(): {arg}= must be a positive whole number of seconds, found {value!r}"
            )
        return f"{int(seconds)} seconds", int(seconds)
    if not isinstance(value, str):
        raise SchemaError(
            f"{func}(): {arg}= must be a duration such as '1 day' or '30 minutes', "
            f"found {type(value).__name__}"
        )
    text = value.strip().lower()
    if text.startswith("interval "):
        text = text[len("interval ") :]
    total = 0
    pos = 0
    parts = 0
    for match in _DURATION_PART.finditer(text):
        if text[pos : match.start()].strip():
            break
        unit = _DURATION_UNIT_ALIASES.get(match.group(2), match.group(2))
        if unit not in _DURATION_UNIT_SECONDS:
            break
        total += int(match.group(1)) * _DURATION_UNIT_SECONDS[unit]
        pos = match.end()
        parts += 1
    if parts == 0 or text[pos:].strip() or total < 0 or (total == 0 and not allow_zero):
        raise SchemaError(
            f"{func}(): {arg}= must be a positive duration such as '1 day', '30 minutes' or "
            f"'2 hours 30 minutes' (units: weeks, days, hours, minutes, seconds), found {value!r}"
        )
    return f"{total} seconds", total


def check_flag(func: str, arg: str, value: Any) -> bool:
    """The one boolean-option check (``True``/``False``, not truthy values)."""
    if not isinstance(value, bool):
        raise SchemaError(f"{func}(): {arg}= must be True or False, found {value!r}")
    return value


def check_int(func: str, arg: str, value: Any, *, low: int = 1, unit: str | None = None) -> int:
    """The one integer-option check: an ``int`` (not ``bool``) ``>= low``; returns it.

    ``unit`` (e.g. ``"days"``) is named in the message.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        if unit and low == 1:
            expected = f"a positive int ({unit})"
        else:
            expected = f"an integer >= {low}" + (f" ({unit})" if unit else "")
        raise SchemaError(function=func, argument=arg, expected=expected, found=repr(value))
    return value


def check_increasing_pair(
    func: str,
    arg: str,
    value: Any,
    *,
    low: float,
    high: float,
    low_inclusive: bool,
    meaning: str,
) -> tuple[float, float]:
    """The one check for a pair of cut points ``(a, b)``: finite, ``low <(=) a < b <= high``.

    ``meaning`` names the two cut points in the message, e.g. ``"(A, B)"``.
    """
    try:
        items = list(value)
    except TypeError:
        items = None
    if (
        items is None
        or isinstance(value, (str, bytes))
        or len(items) != 2
        or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
            for v in items
        )
    ):
        found = repr(items) if items is not None else type(value).__name__
        raise SchemaError(
            function=func, argument=arg, expected=f"two numbers {meaning}", found=found
        )
    a, b = float(items[0]), float(items[1])
    if not ((low <= a if low_inclusive else low < a) and a < b <= high):
        sign = "<=" if low_inclusive else "<"
        raise SchemaError(
            function=func,
            argument=arg,
            expected=f"increasing, {low:g} {sign} first < second <= {high:g}",
            found=repr(tuple(items)),
        )
    return a, b


def check_bands(func: str, arg: str, bands: Any) -> tuple[float, float]:
    """Health band cut points (red/yellow, yellow/green): ``0 <= low < high <= 100``."""
    return check_increasing_pair(
        func,
        arg,
        bands,
        low=0.0,
        high=100.0,
        low_inclusive=True,
        meaning="(red/yellow, yellow/green)",
    )


def check_name(func: str, arg: str, value: Any) -> str:
    """The one column-name check: a non-empty ``str``; returns it."""
    if not isinstance(value, str) or not value:
        found = repr(value) if isinstance(value, str) else type(value).__name__
        raise SchemaError(
            f"{func}(): argument {arg}= must be a column name (str), found {found}",
            function=func,
            argument=arg,
            expected="a column name (non-empty str)",
            found=found,
        )
    return value


def check_unique_columns(df: DataFrame, func: str) -> None:
    """Raise :class:`SchemaError` if ``df`` has two top-level columns with the same name.

    Spark resolves names case-insensitively by default, so ``"a"`` and ``"A"`` also clash.
    """
    seen: dict[str, str] = {}
    for name in column_names(df):
        key = name.lower()
        if key in seen:
            raise SchemaError(
                f"{func}(): the DataFrame has duplicate column names {seen[key]!r} and {name!r}; "
                "rename one first",
                function=func,
                column=name,
                expected="unique column names",
                found=f"{seen[key]!r} and {name!r}",
            )
        seen[key] = name


def check_group_keys(
    df: DataFrame,
    func: str,
    keys: Sequence[str],
    *,
    account_col: str | None,
    inputs: Sequence[str] = (),
) -> None:
    """The one ``by=`` rule: keys exist, are unique, and repeat neither the account nor an input."""
    existing = column_names(df)
    for key in keys:
        if key not in existing:
            raise SchemaError(
                _missing_message(func, key, existing, "by"),
                function=func,
                argument="by",
                column=key,
                expected="an existing column",
                found="no such column",
            )
        if account_col is not None and key == account_col:
            raise SchemaError(
                f"{func}(): by= must not contain the account column {key!r}, found {list(keys)!r}",
                function=func,
                argument="by",
                column=key,
                expected="columns other than the account column",
                found=repr(list(keys)),
            )
        if key in inputs:
            raise SchemaError(
                f"{func}(): by= must not repeat an input column, found {key!r}",
                function=func,
                argument="by",
                column=key,
                expected="columns other than the inputs",
                found=repr(key),
            )
    if len(set(keys)) != len(keys):
        raise SchemaError(
            f"{func}(): by= must not contain duplicates, found {list(keys)!r}",
            function=func,
            argument="by",
            expected="distinct columns",
            found=repr(list(keys)),
        )


def check_output_collisions(func: str, columns: Mapping[str, str], outputs: Iterable[str]) -> None:
    """Raise :class:`SchemaError` if a kept input column is named like an output column.

    ``columns`` maps each kept column to the argument that named it (``{"acct": "account_col"}``);
    names compare case-insensitively, as Spark resolves them.
    """
    taken = {name.lower() for name in outputs}
    for column, arg in columns.items():
        if column.lower() in taken:
            raise SchemaError(
                f"{func}(): {arg}= column {column!r} clashes with an output column; "
                "rename it first",
                function=func,
                argument=arg,
                column=column,
                expected="a name that is not an output column",
                found=repr(column),
            )


def quote(name: str) -> str:
    """``name`` as a Spark column reference that reads literally (dots, backticks, spaces)."""
    return "`" + name.replace("`", "``") + "`"


def col(name: str) -> Column:
    """``F.col`` of a column *name* (never parsed: ``"amt.usd"`` is one column, not a field)."""
    from pyspark.sql import functions as F

    return F.col(quote(name))


def finite(column: Column) -> Column:
    """True where a numeric column is not null, not NaN and not ±inf (never null itself).

    The one rule for "invalid value": non-finite amounts are excluded and counted, never
    propagated into sums.
    """
    from pyspark.sql import functions as F

    as_double = column.cast("double")
    ok = (
        column.isNotNull()
        & ~F.isnan(as_double)
        & (as_double != F.lit(float("inf")))
        & (as_double != F.lit(float("-inf")))
    )
    return F.coalesce(ok, F.lit(False))


#: The one NPS rule: promoters score 9-10, detractors 0-6 (whole scores 0..10 only).
NPS_PROMOTER_MIN = 9
NPS_DETRACTOR_MAX = 6


def nps_classes(score: Column) -> tuple[Column, Column, Column]:
    """``(valid, promoter, detractor)`` for a NaN-free double 0..10 score (never null)."""
    from pyspark.sql import functions as F

    inside = score.isNotNull() & (score >= 0.0) & (score <= 10.0) & (score % 1.0 == 0.0)
    valid = F.coalesce(inside, F.lit(False))
    return valid, valid & (score >= NPS_PROMOTER_MIN), valid & (score <= NPS_DETRACTOR_MAX)


_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_PREFIX = f"{TEMP_PREFIX}col"

#: Keyword arguments that hold column names besides ``*_col`` (a name or a sequence of
#: names) and those that are mappings keyed by column name.
_COLUMN_LIST_ARGS = frozenset({"by", "lower_is_better"})
_COLUMN_MAPPING_ARGS = frozenset({"weights", "thresholds", "critical"})

P = ParamSpec("P")


def _needs_rename(name: str) -> bool:
    """A name that needs quoting, or one that could collide with kamlib's temporaries."""
    return not _SAFE_NAME.fullmatch(name) or name.lower().startswith(TEMP_PREFIX)


def _is_frame(value: Any) -> bool:
    return hasattr(value, "schema") and hasattr(value, "toDF")


def _map_argument(arg: str, value: Any, to_safe: Mapping[str, str]) -> Any:
    """``value`` with the column names it holds mapped by ``to_safe`` (other values unchanged)."""

    def one(v: Any) -> Any:
        return to_safe.get(v, v) if isinstance(v, str) else v

    if arg.endswith(("_col", "_cols")) or arg in _COLUMN_LIST_ARGS:
        if isinstance(value, str):
            return one(value)
        if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
            return [one(v) for v in value]
    if arg in _COLUMN_MAPPING_ARGS and isinstance(value, Mapping):
        return {one(k): v for k, v in value.items()}
    return value


def _unmap_text(text: str | None, back: Mapping[str, str]) -> str | None:
    """``text`` with every private name replaced by the user's, in one pass (no chains)."""
    if text is None or not back:
        return text
    table = {repr(safe): repr(original) for safe, original in back.items()}
    table.update(back)
    pattern = "|".join(re.escape(k) for k in sorted(table, key=len, reverse=True))
    return re.sub(pattern, lambda m: table[m.group(0)], text)


def any_column_name(func: str) -> Callable[[Callable[P, DataFrame]], Callable[P, DataFrame]]:
    """Make a transformation work with any column name Spark allows, and reject duplicates.

    The rule, in one place: the top-level names of every DataFrame argument must be unique
    (case-insensitively, as Spark resolves them: else :class:`SchemaError` before any job);
    columns whose names need quoting (dots, backticks, spaces, unicode, ...) or start with
    :data:`TEMP_PREFIX` (so they can never collide with kamlib's temporaries) are renamed to
    private names for the call -- one ``toDF`` per frame, schema only, the same mapping for
    every DataFrame argument (``contracts``, ``hierarchy``, ``labels``, ...) -- and renamed
    back in the result with one ``toDF``, so no name is ever parsed as a path or pasted into
    SQL and no rename can chain into another. Column arguments (``*_col=``, ``by=``,
    ``lower_is_better=``) and the keys of column mappings (``weights=``, ``thresholds=``,
    ``critical=``) are mapped the same way, and :class:`SchemaError` messages name the
    user's columns.
    """

    def decorate(impl: Callable[P, DataFrame]) -> Callable[P, DataFrame]:
        @functools.wraps(impl)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> DataFrame:
            frames = [a for a in args if _is_frame(a)]
            frames += [v for v in kwargs.values() if _is_frame(v)]
            if not frames:
                return impl(*args, **kwargs)
            for frame in frames:
                check_unique_columns(typing.cast("DataFrame", frame), func)
            hostile: list[str] = []
            for frame in frames:
                for name in column_names(typing.cast("DataFrame", frame)):
                    if _needs_rename(name) and name not in hostile:
                        hostile.append(name)
            if not hostile:
                return impl(*args, **kwargs)
            to_safe = {n: f"{_SAFE_PREFIX}{i}__" for i, n in enumerate(hostile)}
            back = {v: k for k, v in to_safe.items()}

            def rename(value: Any) -> Any:
                if not _is_frame(value):
                    return value
                frame = typing.cast("DataFrame", value)
                return frame.toDF(*[to_safe.get(n, n) for n in column_names(frame)])

            call_args = tuple(rename(a) for a in args)
            mapped: dict[str, Any] = {
                arg: rename(value) if _is_frame(value) else _map_argument(arg, value, to_safe)
                for arg, value in kwargs.items()
            }
            try:
                result = impl(*call_args, **mapped)
            except SchemaError as exc:
                raise SchemaError(
                    _unmap_text(str(exc), back) or "",
                    function=exc.function,
                    argument=exc.argument,
                    column=back.get(exc.column or "", exc.column),
                    expected=_unmap_text(exc.expected, back),
                    found=_unmap_text(exc.found, back),
                ) from None
            names = column_names(result)
            if not any(n in back for n in names):
                return result
            return result.toDF(*[back.get(n, n) for n in names])

        return wrapper

    return decorate
