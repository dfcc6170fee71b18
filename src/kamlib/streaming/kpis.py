"""Streaming KPIs: de-duplication, windowed revenue, windowed NPS and the late-data metric.

Every function is a pure DataFrame transformation that works the same on a streaming DataFrame
(``spark.readStream``; the result can be written in ``append`` mode) and on a batch DataFrame
(where the watermark is a no-op and de-duplication is a plain ``dropDuplicates``).

Late data
---------
A watermark ``W = max(event_time seen so far) - watermark`` is tracked by Spark. When a
micro-batch runs, Spark filters late rows against the watermark *of the previous micro-batch*
(the value reported in the previous ``query.lastProgress["eventTime"]["watermark"]``):

* with ``dedupe=True`` (the default) the de-duplication operator drops every event whose
  ``event_time`` is at or before that watermark;
* with ``dedupe=False`` the windowed aggregation drops an event only when its window has
  already been closed (``window_end <= watermark``).

Dropped events are *not* silently lost: Spark counts them per stateful operator in the query
progress (``stateOperators[i].numRowsDroppedByWatermark``), which :func:`late_rows` reads, and
they are still present in the raw ``orders`` output when a runner writes the decoded events
unaggregated. :func:`flag_late` marks them in such a raw output given a watermark value.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kamlib._validation import (
    check_duration,
    check_flag,
    check_name,
    normalize_by,
    require_columns,
)
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = [
    "deduplicate_events",
    "flag_late",
    "late_rows",
    "progress_watermark",
    "streaming_nps",
    "windowed_revenue",
]


def _check_by(func: str, by: list[str], reserved: Sequence[str]) -> None:
    clash = [c for c in by if c in reserved]
    if clash:
        raise SchemaError(
            f"{func}(): by= must not contain {', '.join(repr(c) for c in clash)} "
            f"(already a key or output column), found {by!r}"
        )


def deduplicate_events(
    df: DataFrame,
    *,
    event_id_col: str = "event_id",
    time_col: str = "event_time",
    watermark: str | _dt.timedelta = "1 day",
) -> DataFrame:
    """Drop repeated deliveries of the same event (same ``event_id``) within the watermark.

    Sets the event-time watermark ``watermark`` on ``time_col`` and keeps the first copy of each
    ``event_id`` seen (``dropDuplicatesWithinWatermark``). On a streaming DataFrame the ids are
    kept in state until the watermark passes their event time, so a duplicate arriving up to
    ``watermark`` after the newest event seen is still dropped; an event (duplicate or not)
    whose ``event_time`` is at or before the watermark of the previous micro-batch is dropped as
    late and counted in the progress metric read by :func:`late_rows`. On a batch DataFrame
    this is ``dropDuplicates([event_id_col])``.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Decoded events (streaming or batch).
    event_id_col, time_col : str
        Event id and event time (timestamp) columns.
    watermark : str or datetime.timedelta
        Allowed lateness, e.g. ``"1 day"``. Choose it at least as long as the longest delay
        between two deliveries of the same event.

    Returns
    -------
    pyspark.sql.DataFrame
        The same columns, one row per ``event_id`` (within the watermark).

    Examples
    --------
    >>> import datetime as dt
    >>> df = spark.createDataFrame(
    ...     [("e1", dt.datetime(2024, 1, 1)), ("e1", dt.datetime(2024, 1, 1))],
    ...     "event_id string, event_time timestamp")
    >>> deduplicate_events(df).count()
    1
    """
    func = "deduplicate_events"
    delay, _ = check_duration(func, "watermark", watermark)
    require_columns(df, func, event_id_col=(event_id_col, "any"))
    require_columns(df, func, time_col=(time_col, "timestamp"))
    return _dedupe(df, event_id_col, time_col, delay)


def _dedupe(df: DataFrame, event_id_col: str, time_col: str, delay: str) -> DataFrame:
    watermarked = df.withWatermark(time_col, delay)
    if df.isStreaming:
        return watermarked.dropDuplicatesWithinWatermark([event_id_col])
    return watermarked.dropDuplicates([event_id_col])


def _prepare(
    df: DataFrame,
    func: str,
    *,
    dedupe: bool,
    event_id_col: str,
    time_col: str,
    delay: str,
) -> DataFrame:
    if dedupe:
        require_columns(df, func, event_id_col=(event_id_col, "any"))
        return _dedupe(df, event_id_col, time_col, delay)
    return df.withWatermark(time_col, delay)


def windowed_revenue(
    df: DataFrame,
    *,
    window: str | _dt.timedelta = "1 day",
    watermark: str | _dt.timedelta = "1 day",
    account_col: str = "account_id",
    time_col: str = "event_time",
    amount_col: str = "amount",
    event_id_col: str = "event_id",
    by: str | Sequence[str] | None = None,
    dedupe: bool = True,
) -> DataFrame:
    r"""Per-account revenue and order counts per event-time tumbling window.

    For each account (and ``by`` group) and each window :math:`[s, s + w)` aligned to the Unix
    epoch (UTC), after de-duplication by ``event_id`` (``dedupe=True``):

    .. math::

        \text{revenue} = \sum_{e:\ s \le t_e < s + w} \text{amount}_e, \qquad
        \text{orders} = \#\{e:\ s \le t_e < s + w\}

    Refunds (negative amounts) are included; a null amount (never present after
    :func:`kamlib.streaming.decode_json`) counts as an order and adds nothing to revenue.

    On a streaming DataFrame the result supports ``append`` output mode: a window's row is
    emitted once, when the watermark passes the window end; events arriving later are dropped
    and counted by :func:`late_rows` (see the module notes for the exact rule).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Decoded order events (:data:`kamlib.schema.ORDER_EVENT`), streaming or batch.
    window : str or datetime.timedelta
        Window length, e.g. ``"1 day"`` or ``"1 hour"``.
    watermark : str or datetime.timedelta
        Allowed lateness of events.
    account_col, time_col, amount_col, event_id_col : str
        Input columns.
    by : str or sequence of str, optional
        Extra grouping columns (for example ``tier`` or ``is_key_account`` after
        :func:`kamlib.streaming.enrich_with_accounts`).
    dedupe : bool
        De-duplicate by ``event_id_col`` within the watermark first.

    Returns
    -------
    pyspark.sql.DataFrame
        ``by...``, ``account_id``, ``window_start``, ``window_end``, ``revenue``, ``orders``.

    Examples
    --------
    >>> import datetime as dt
    >>> df = spark.createDataFrame(
    ...     [("e1", "a", dt.datetime(2024, 1, 1, 9), 10.0),
    ...      ("e1", "a", dt.datetime(2024, 1, 1, 9), 10.0),
    ...      ("e2", "a", dt.datetime(2024, 1, 1, 17), -2.5)],
    ...     "event_id string, account_id string, event_time timestamp, amount double")
    >>> row = windowed_revenue(df).first()
    >>> (row.window_start, row.revenue, row.orders)
    (datetime.datetime(2024, 1, 1, 0, 0), 7.5, 2)
    """
    from pyspark.sql import functions as F

    func = "windowed_revenue"
    length, _ = check_duration(func, "window", window)
    delay, _ = check_duration(func, "watermark", watermark)
    check_flag(func, "dedupe", dedupe)
    groups = normalize_by(func, by)
    _check_by(func, groups, [account_col, "window_start", "window_end", "revenue", "orders"])
    require_columns(df, func, account_col=(account_col, "any"), amount_col=(amount_col, "numeric"))
    require_columns(df, func, time_col=(time_col, "timestamp"))
    for column in groups:
        require_columns(df, func, by=(column, "any"))
    events = _prepare(
        df, func, dedupe=dedupe, event_id_col=event_id_col, time_col=time_col, delay=delay
    )
    agg = events.groupBy(*groups, account_col, F.window(time_col, length).alias("__kamlib_w")).agg(
        F.sum(amount_col).alias("revenue"),
        F.count(F.lit(1)).alias("orders"),
    )
    return agg.select(
        *groups,
        account_col,
        F.col("__kamlib_w.start").alias("window_start"),
        F.col("__kamlib_w.end").alias("window_end"),
        F.col("revenue").cast("double").alias("revenue"),
        "orders",
    )


def _valid_score(score: Column, integral: bool) -> Column:
    from pyspark.sql import functions as F

    in_range = score.isNotNull() & (score >= 0) & (score <= 10)
    if integral:
        return in_range
    return in_range & (score == F.floor(score))


def streaming_nps(
    df: DataFrame,
    *,
    window: str | _dt.timedelta = "1 day",
    watermark: str | _dt.timedelta = "1 day",
    by: str | Sequence[str] | None = None,
    score_col: str = "score",
    time_col: str = "event_time",
    event_id_col: str = "event_id",
    dedupe: bool = True,
) -> DataFrame:
    r"""Net Promoter Score per event-time tumbling window (overall or per ``by`` group).

    Uses the definition of :mod:`kamlib.nps`: a response is valid when its score is an integer
    0..10; promoters score 9-10, passives 7-8, detractors 0-6, and

    .. math::

        \text{NPS} = 100\,\frac{P - D}{n}

    with :math:`n = P + \text{passives} + D` valid responses; null when :math:`n = 0`. Invalid
    scores (null, out of range, fractional) are excluded and counted in ``invalid``.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Decoded survey events (:data:`kamlib.schema.SURVEY_EVENT`), streaming or batch.
    window, watermark : str or datetime.timedelta
        Window length and allowed lateness.
    by : str or sequence of str, optional
        Grouping columns, e.g. ``"account_id"`` for per-account NPS; ``None`` = all responses.
    score_col, time_col, event_id_col : str
        Input columns.
    dedupe : bool
        De-duplicate by ``event_id_col`` within the watermark first.

    Returns
    -------
    pyspark.sql.DataFrame
        ``by...``, ``window_start``, ``window_end``, ``n``, ``invalid``, ``promoters``,
        ``passives``, ``detractors``, ``nps``.

    References
    ----------
    Reichheld, F. F. (2003). The one number you need to grow. *Harvard Business Review*, 81(12).

    Examples
    --------
    >>> import datetime as dt
    >>> t = dt.datetime(2024, 1, 1, 12)
    >>> df = spark.createDataFrame(
    ...     [("s1", t, 10), ("s2", t, 9), ("s3", t, 3), ("s4", t, 8)],
    ...     "event_id string, event_time timestamp, score int")
    >>> row = streaming_nps(df).first()
    >>> (row.n, row.promoters, row.detractors, row.nps)
    (4, 2, 1, 25.0)
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    func = "streaming_nps"
    length, _ = check_duration(func, "window", window)
    delay, _ = check_duration(func, "watermark", watermark)
    check_flag(func, "dedupe", dedupe)
    groups = normalize_by(func, by)
    outputs = ["window_start", "window_end", "n", "invalid", "promoters", "passives"]
    _check_by(func, groups, [*outputs, "detractors", "nps"])
    require_columns(df, func, score_col=(score_col, "numeric"))
    require_columns(df, func, time_col=(time_col, "timestamp"))
    for column in groups:
        require_columns(df, func, by=(column, "any"))
    integral = isinstance(df.schema[score_col].dataType, T.IntegralType)
    events = _prepare(
        df, func, dedupe=dedupe, event_id_col=event_id_col, time_col=time_col, delay=delay
    )
    score = F.col(score_col)
    valid = _valid_score(score, integral)
    agg = events.groupBy(*groups, F.window(time_col, length).alias("__kamlib_w")).agg(
        F.count_if(valid).alias("n"),
        F.count_if(~valid).alias("invalid"),
        F.count_if(valid & (score >= 9)).alias("promoters"),
        F.count_if(valid & (score >= 7) & (score < 9)).alias("passives"),
        F.count_if(valid & (score < 7)).alias("detractors"),
    )
    nps = F.try_divide(
        (F.col("promoters") - F.col("detractors")).cast("double") * 100.0, F.col("n")
    )
    return agg.select(
        *groups,
        F.col("__kamlib_w.start").alias("window_start"),
        F.col("__kamlib_w.end").alias("window_end"),
        "n",
        "invalid",
        "promoters",
        "passives",
        "detractors",
        F.when(F.col("n") > 0, nps).alias("nps"),
    )


def _as_mapping(func: str, progress: Any) -> Mapping[str, Any] | None:
    if progress is None:
        return None
    if isinstance(progress, (str, bytes)):
        try:
            loaded = json.loads(progress)
        except ValueError:
            raise SchemaError(f"{func}(): progress is not valid JSON: {progress[:80]!r}") from None
        progress = loaded
    if isinstance(progress, Mapping):
        return progress
    raise SchemaError(
        f"{func}(): progress must be a StreamingQueryProgress, a dict or a JSON string, "
        f"found {type(progress).__name__}"
    )


def late_rows(progress: Any) -> int:
    """Number of input rows that Spark dropped as late in one micro-batch.

    Sums ``numRowsDroppedByWatermark`` over the stateful operators of a query progress
    (``query.lastProgress``, an element of ``query.recentProgress``, the progress of a
    ``StreamingQueryListener`` event, or its JSON text). With :func:`windowed_revenue` or
    :func:`streaming_nps` and ``dedupe=True``, the late rows are counted by the
    de-duplication operator and never reach the aggregation, so the sum counts each late
    event once.

    Parameters
    ----------
    progress : StreamingQueryProgress, dict, str or None
        One progress report; ``None`` (no batch has run yet) gives 0.

    Returns
    -------
    int
        Late rows dropped in that micro-batch (0 for stateless queries).

    Examples
    --------
    >>> late_rows({"stateOperators": [
    ...     {"operatorName": "dedupeWithinWatermark", "numRowsDroppedByWatermark": 3},
    ...     {"operatorName": "stateStoreSave", "numRowsDroppedByWatermark": 0}]})
    3
    >>> late_rows(None)
    0
    """
    data = _as_mapping("late_rows", progress)
    if data is None:
        return 0
    total = 0
    for operator in data.get("stateOperators") or ():
        total += int(operator.get("numRowsDroppedByWatermark") or 0)
    return total


def progress_watermark(progress: Any) -> _dt.datetime | None:
    """The event-time watermark (naive UTC) reported in a query progress, or ``None``.

    Spark reports ``eventTime.watermark`` as an ISO instant; before any event has been seen it
    is the Unix epoch, returned here as ``None``.

    Examples
    --------
    >>> progress_watermark({"eventTime": {"watermark": "2024-01-02T12:00:00.000Z"}})
    datetime.datetime(2024, 1, 2, 12, 0)
    >>> progress_watermark({"eventTime": {"watermark": "1970-01-01T00:00:00.000Z"}}) is None
    True
    """
    data = _as_mapping("progress_watermark", progress)
    if data is None:
        return None
    value = (data.get("eventTime") or {}).get("watermark")
    if not value:
        return None
    parsed = _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    if parsed == _dt.datetime(1970, 1, 1):
        return None
    return parsed


def flag_late(
    df: DataFrame,
    *,
    watermark_time: _dt.datetime | str | None,
    time_col: str = "event_time",
    flag_col: str = "is_late",
) -> DataFrame:
    """Add a boolean ``flag_col``: the event is at or before ``watermark_time`` (late).

    Use it on the raw events of a micro-batch (e.g. inside ``foreachBatch``) with the watermark
    of the previous progress (:func:`progress_watermark`), to keep late events visible in the
    raw output. ``watermark_time=None`` (no watermark yet) flags nothing as late.

    Examples
    --------
    >>> import datetime as dt
    >>> df = spark.createDataFrame(
    ...     [(dt.datetime(2024, 1, 1),), (dt.datetime(2024, 1, 3),)], "event_time timestamp")
    >>> [r.is_late for r in flag_late(df, watermark_time="2024-01-02").collect()]
    [True, False]
    """
    from pyspark.sql import functions as F

    from kamlib._validation import parse_timestamp

    func = "flag_late"
    check_name(func, "flag_col", flag_col)
    require_columns(df, func, time_col=(time_col, "timestamp"))
    if watermark_time is None:
        return df.withColumn(flag_col, F.lit(False))
    cutoff = parse_timestamp(func, "watermark_time", watermark_time)
    cutoff_col = F.lit(cutoff.isoformat(sep=" ")).cast("timestamp")
    late = F.coalesce(F.col(time_col) <= cutoff_col, F.lit(False))
    return df.withColumn(flag_col, late)
