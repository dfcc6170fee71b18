"""Decode JSON records in the Kafka record shape, quarantining what does not fit the schema.

:func:`decode_json` splits a DataFrame of records (a stream or a batch) into ``valid`` rows,
typed by an event schema such as :data:`kamlib.schema.ORDER_EVENT`, and ``quarantine`` rows
that keep the raw text, a readable ``error`` and the source coordinates. Every input record
ends up in exactly one of the two outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from kamlib._validation import check_columns, column_names
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructField, StructType

__all__ = ["COORDINATES", "DEFAULT_RANGES", "Decoded", "decode_json"]

#: Source coordinate columns every kamlib source provides (the Kafka record shape minus
#: ``key`` and ``value``). Kept on both outputs of :func:`decode_json`.
COORDINATES: tuple[str, ...] = ("topic", "partition", "offset", "timestamp")

#: Inclusive value ranges checked by default when the schema has the field: an NPS
#: ``score`` must be 0..10 (see :data:`kamlib.schema.SURVEY_EVENT`).
DEFAULT_RANGES: dict[str, tuple[float, float]] = {"score": (0, 10)}

_ERROR_COL = "error"
_CORRUPT = "__kamlib_corrupt"
_RAW_COL = "raw"
_STRUCT = "__kamlib_struct"
#: Key appended by :func:`_sealed_keys`; NUL cannot start a key of a real event.
_END_KEY = "\x00kamlib_end"
_TRAILING = "not exactly one JSON object (trailing data or several objects)"


def _sealed_keys(raw: Column) -> Column:
    """Top-level keys of ``raw`` followed by ``_END_KEY``, or not, when ``raw`` is not ONE object.

    The closing brace of the (whitespace-trimmed) text is replaced by ``,"<end>":0}`` and the
    keys are read with ``json_object_keys``, which, like every Spark JSON reader, stops after
    the first complete value. When the text is exactly one object the end key is its last
    key; when something follows the first object (``{..} x``, ``{..}{..}``, ``{..},{..}``,
    ``{..}}``) the first object closes before the end key, or the text is not JSON at all.
    The list also shows duplicate keys, which ``from_json`` silently resolves. The sentinel
    could be forged only by text written to contain it; such a record still passes the
    schema checks on its first object.
    """
    from pyspark.sql import functions as F

    text = F.btrim(raw, F.lit(" \t\r\n"))
    n = F.length(text)
    inner = F.substring(text, F.lit(2), F.greatest(n - 2, F.lit(0)))
    end = F.lit(',"\\u0000kamlib_end":0}')
    sealed = F.when(
        text.startswith("{") & text.endswith("}"),
        F.when(F.btrim(inner, F.lit(" \t\r\n")) == "", F.lit('{"\\u0000kamlib_end":0}')).otherwise(
            F.concat(F.lit("{"), inner, end)
        ),
    )
    return F.json_object_keys(sealed)


class Decoded(NamedTuple):
    """The two outputs of :func:`decode_json`.

    Attributes
    ----------
    valid : pyspark.sql.DataFrame
        One row per valid record: the schema's fields (typed) plus the source coordinates
        ``topic``, ``partition``, ``offset``, ``timestamp`` and any extra input columns
        (for example ``file`` from :func:`kamlib.streaming.file_source`).
    quarantine : pyspark.sql.DataFrame
        One row per rejected record: ``raw`` (the value as text), ``error`` (why it was
        rejected), the source coordinates and any extra input columns.
    """

    valid: DataFrame
    quarantine: DataFrame


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _extra_columns(df: DataFrame, value_col: str) -> list[str]:
    skip = {value_col, "key", *COORDINATES}
    return [c for c in column_names(df) if c not in skip]


def _check_decode(
    df: DataFrame,
    schema: StructType,
    value_col: str,
    ranges: Mapping[str, tuple[float, float]] | None,
    func: str,
) -> tuple[list[str], dict[str, tuple[float, float]]]:
    """Validate the arguments of :func:`decode_columns`; return the extra columns and ranges."""
    from pyspark.sql import types as T

    if not isinstance(schema, T.StructType) or not schema.fields:
        raise SchemaError(
            f"{func}(): schema= must be a non-empty pyspark StructType, found {schema!r}"
        )
    check_columns(df, func, {value_col: "any", **dict.fromkeys(COORDINATES, "any")})
    value_type = df.schema[value_col].dataType
    if not isinstance(value_type, (T.StringType, T.BinaryType)):
        raise SchemaError(
            f"{func}(): column {value_col!r} must be string or binary, "
            f"found {value_type.simpleString()}"
        )
    extra = _extra_columns(df, value_col)
    reserved = {_RAW_COL, _ERROR_COL, *COORDINATES, *extra}
    clash = [f.name for f in schema.fields if f.name in reserved]
    if clash:
        raise SchemaError(
            f"{func}(): schema field(s) {clash} collide with the record columns "
            f"{sorted(reserved)}; rename them in the schema"
        )
    bounds = dict(DEFAULT_RANGES if ranges is None else ranges)
    unknown = [name for name in bounds if name not in schema.fieldNames()]
    if ranges is not None and unknown:
        raise SchemaError(
            f"{func}(): ranges= names field(s) {unknown} that the schema does not have; "
            f"schema fields are {schema.fieldNames()}"
        )
    return extra, bounds


def _field_problems(
    field: StructField, s: Column, keys: Column, bounds: Mapping[str, tuple[float, float]]
) -> list[Column]:
    """The error texts of one schema field (null when the field is fine)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    typed = s.getField(field.name)
    # Set (partial results) when some field could not be converted to its type.
    type_error = s.getField(_CORRUPT).isNotNull()
    wrong = type_error & typed.isNull() & F.array_contains(keys, F.lit(field.name))
    problems = [F.when(wrong, F.lit(f"wrong type for '{field.name}'"))]
    if not field.nullable:
        problems[0] = problems[0].when(
            typed.isNull(), F.lit(f"missing required field '{field.name}'")
        )
    if isinstance(field.dataType, (T.DoubleType, T.FloatType)):
        problems.append(
            F.when(
                F.isnan(typed) | (F.abs(typed) == F.lit(float("inf"))),
                F.lit(f"non-finite value for '{field.name}'"),
            )
        )
    if field.name in bounds:
        low, high = bounds[field.name]
        problems.append(
            F.when(
                (typed < F.lit(low)) | (typed > F.lit(high)),
                F.concat(
                    F.lit(f"out of range: {field.name} "),
                    typed.cast("string"),
                    F.lit(f" (expected {_fmt(low)}..{_fmt(high)})"),
                ),
            )
        )
    return problems


def _record_error(
    schema: StructType, s: Column, raw: Column, bounds: Mapping[str, tuple[float, float]]
) -> Column:
    """Why a record is rejected (null when valid): the first failing rule or the field problems."""
    from pyspark.sql import functions as F

    # Every record's top-level keys, sealed with an end marker: tells one object from
    # trailing data, shows duplicate keys, and "absent" from "wrong type" (a light token
    # scan beside the typed parse; about half its cost, measured on 2M order events).
    keys = _sealed_keys(raw)
    # One object, nothing after it, no key twice (see _sealed_keys).
    one_object = F.element_at(keys, -1) == F.lit(_END_KEY)
    # A key repeats when the distinct keys are fewer (cheap, native); the repeated key's name
    # (its second occurrence: first position != own position) is only computed for those rare
    # records, inside the CASE branch.
    repeated = F.size(F.array_distinct(keys)) < F.size(keys)
    second = F.filter(keys, lambda k, i: F.array_position(keys, k) != i + 1)
    problems = [p for field in schema.fields for p in _field_problems(field, s, keys, bounds)]
    problems.append(
        F.when(
            one_object & repeated,
            F.concat(F.lit("duplicate key '"), F.element_at(second, 1), F.lit("'")),
        )
    )
    joined = F.concat_ws("; ", *problems)
    not_json = keys.isNull() & (s.isNull() | s.getField(_CORRUPT).isNotNull())
    return (
        F.when(not_json, F.lit("invalid JSON"))
        .when(~F.coalesce(one_object, F.lit(False)), F.lit(_TRAILING))
        .otherwise(F.nullif(joined, F.lit("")))
    )


def decode_columns(
    df: DataFrame,
    schema: StructType,
    *,
    value_col: str = "value",
    ranges: Mapping[str, tuple[float, float]] | None = None,
    func: str = "decode_json",
) -> DataFrame:
    """Parse ``value_col`` once and return ONE frame with the typed fields, ``raw`` and ``error``.

    ``error`` is null for valid records. This is the single-pass core of :func:`decode_json`;
    the streaming runner uses it directly so that stateful operators (de-duplication) see
    valid and rejected records in one plan. Columns: the schema fields, ``raw``, ``error``,
    the coordinates and the extra input columns.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    extra, bounds = _check_decode(df, schema, value_col, ranges, func)
    nullable = T.StructType(
        [T.StructField(f.name, f.dataType, True) for f in schema.fields]
        + [T.StructField(_CORRUPT, T.StringType(), True)]
    )
    raw = F.col(_RAW_COL)
    s = F.col(_STRUCT)
    passthrough = [F.col(c) for c in (*COORDINATES, *extra)]
    # The parse result comes out of a one-element ``explode`` (a Generate node, compiled
    # with whole-stage code generation): filters on it (e.g. ``error IS NULL`` for
    # ``valid``) cannot be pushed below it, so the optimizer cannot inline ``from_json``
    # into a Filter, where it would be evaluated once per reference instead of once per
    # record. The text is cast once, below the Generate.
    text = df.select(F.col(value_col).cast("string").alias(_RAW_COL), *passthrough)
    parsed = text.select(
        raw,
        F.explode(
            F.array(F.from_json(raw, nullable, {"columnNameOfCorruptRecord": _CORRUPT}))
        ).alias(_STRUCT),
        *passthrough,
    )
    return parsed.select(
        *[s.getField(f.name).alias(f.name) for f in schema.fields],
        raw,
        _record_error(schema, s, raw, bounds).alias(_ERROR_COL),
        *passthrough,
    )


def split_decoded(decoded: DataFrame, schema: StructType) -> Decoded:
    """Split the output of :func:`decode_columns` into :class:`Decoded` ``(valid, quarantine)``."""
    from pyspark.sql import functions as F

    extra = [
        c
        for c in column_names(decoded)
        if c not in {*schema.fieldNames(), _RAW_COL, _ERROR_COL, *COORDINATES}
    ]
    err = F.col(_ERROR_COL)
    valid = decoded.filter(err.isNull()).select(*schema.fieldNames(), *COORDINATES, *extra)
    quarantine = decoded.filter(err.isNotNull()).select(_RAW_COL, _ERROR_COL, *COORDINATES, *extra)
    return Decoded(valid, quarantine)


def decode_json(
    df: DataFrame,
    schema: StructType,
    *,
    value_col: str = "value",
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Decoded:
    """Parse JSON records against an event schema; quarantine the records that do not fit.

    A record is *valid* when its value parses as a JSON object and every field the schema
    marks non-nullable is present, not null and of the right type; nullable fields may be
    absent or null, but a present value of the wrong type also rejects the record. Numeric
    fields listed in ``ranges`` must lie in their inclusive range, and float fields must be
    finite. Everything else goes to ``quarantine`` with a readable ``error``:

    * ``invalid JSON`` (not parseable, not an object, or an empty / null value),
    * ``not exactly one JSON object (trailing data or several objects)`` (``{...} x``,
      ``{...}{...}``, two objects on one line: Spark's readers would take the first and drop
      the rest),
    * ``duplicate key 'amount'`` (the same top-level key twice, which readers resolve
      differently),
    * ``missing required field 'event_id'`` (absent or JSON ``null``),
    * ``wrong type for 'amount'`` (e.g. a string where a number is expected, a timestamp
      that cannot be parsed, ``7.5`` for an integer),
    * ``non-finite value for 'amount'``,
    * ``out of range: score 11 (expected 0..10)``.

    Several problems are joined with ``"; "``. Nothing is dropped: ``valid`` and
    ``quarantine`` partition the input. One projection computes the top-level keys of the
    value sealed with an end marker (``json_object_keys``, a light token scan: it shows
    whether the value is exactly one object and which keys it has, duplicates included) and
    the typed ``from_json`` with a corrupt-record column (set, with Spark's per-field partial
    results, when a field could not be converted): a key that is present, typed ``null``
    while the corrupt-record column is set has the wrong type; an absent key or a JSON
    ``null`` is missing. A stream is therefore read and parsed once per micro-batch. (In a
    record with several problems, a JSON ``null`` next to a wrongly typed field may be
    reported as a wrong type; the record is quarantined either way.)

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Records in the Kafka record shape (``value`` binary or string, ``topic``,
        ``partition``, ``offset``, ``timestamp``), streaming or static. Extra columns (e.g.
        ``file``) are carried to both outputs; ``key`` is dropped.
    schema : pyspark.sql.types.StructType
        The event schema, e.g. :data:`kamlib.schema.ORDER_EVENT`.
    value_col : str
        Column holding the JSON text.
    ranges : Mapping[str, tuple[float, float]], optional
        Inclusive ``(low, high)`` bounds per field. Default :data:`DEFAULT_RANGES`
        (``score`` 0..10) for the fields the schema has; pass ``{}`` to check none.

    Returns
    -------
    Decoded
        ``(valid, quarantine)``: ``valid`` has the schema fields plus the coordinates;
        ``quarantine`` has ``raw``, ``error`` and the coordinates.

    Raises
    ------
    SchemaError
        If a record column is missing, ``value`` is neither string nor binary, or a schema
        field collides with a record column.

    Notes
    -----
    Timestamps are parsed with Spark's JSON defaults (ISO 8601, or epoch seconds for JSON
    numbers) in the session time zone; set ``spark.sql.session.timeZone=UTC``. A string
    field accepts any JSON scalar as text (``123`` becomes ``"123"``), as Spark's JSON reader
    does.

    Examples
    --------
    >>> from kamlib.schema import SURVEY_EVENT
    >>> head = '{"event_id": "s%d", "account_id": "a", "event_time": "2024-05-01T10:00:00"'
    >>> lines = [head % 1 + ', "score": 9}', head % 2 + ', "score": 11}', "not json"]
    >>> df = spark.createDataFrame(
    ...     [(line, "surveys", 0, i) for i, line in enumerate(lines)],
    ...     "value string, topic string, partition int, offset long",
    ... ).withColumn("timestamp", F.current_timestamp())
    >>> valid, quarantine = decode_json(df, SURVEY_EVENT)
    >>> [(r.event_id, r.score) for r in valid.collect()]
    [('s1', 9)]
    >>> sorted((r.offset, r.error) for r in quarantine.collect())
    [(1, 'out of range: score 11 (expected 0..10)'), (2, 'invalid JSON')]
    """
    decoded = decode_columns(df, schema, value_col=value_col, ranges=ranges)
    return split_decoded(decoded, schema)
