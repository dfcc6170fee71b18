"""Sessionization of product usage events and per-account engagement per window.

* :func:`sessionize`: event-time session windows per (account, user): a session continues while
  the next event of the same user arrives at most ``gap`` after the previous one.
* :func:`session_engagement`: per account and tumbling window, the number of sessions, their total
  and mean duration, events and distinct active users: the engagement signals behind
  usage-plateau churn warnings (feed them to :func:`kamlib.streaming.evaluate_alerts` with a
  :class:`~kamlib.streaming.DropRule` on ``sessions`` or ``active_users``).

Both work on streaming DataFrames (``append`` output mode, chained in one query) and on batch
DataFrames, with identical results for the sessions that the watermark has closed.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

from kamlib._validation import check_duration, check_flag, require_columns
from kamlib.errors import SchemaError
from kamlib.streaming.kpis import _dedupe

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["session_engagement", "sessionize"]


def sessionize(
    df: DataFrame,
    *,
    gap: str | _dt.timedelta = "30 minutes",
    watermark: str | _dt.timedelta = "1 hour",
    account_col: str = "account_id",
    user_col: str = "user_id",
    time_col: str = "event_time",
    event_id_col: str = "event_id",
    dedupe: bool = True,
) -> DataFrame:
    r"""Group each user's usage events into sessions separated by inactivity gaps.

    Events :math:`t_1 \le t_2 \le \dots` of one (account, user) belong to the same session while
    :math:`t_{i+1} - t_i \le \text{gap}`; a longer pause starts a new session. This is Spark's
    ``session_window(time_col, gap)``: each event opens a window :math:`[t, t + \text{gap})` and
    windows that overlap or touch are merged, so a session window runs from the first event to
    the last event plus ``gap``. With ``dedupe=True`` repeated deliveries (same ``event_id``)
    are dropped first.

    On a stream a session is emitted (``append`` mode) once the watermark passes its window end
    (last event + gap); events older than the watermark are dropped and counted by
    :func:`kamlib.streaming.late_rows`.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Usage events (:data:`kamlib.schema.USAGE_EVENT`), streaming or batch.
    gap : str or datetime.timedelta
        Inactivity gap that closes a session, e.g. ``"30 minutes"``.
    watermark : str or datetime.timedelta
        Allowed lateness of events.
    account_col, user_col, time_col, event_id_col : str
        Input columns.
    dedupe : bool
        De-duplicate by ``event_id_col`` within the watermark first.

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_id``, ``user_id``, ``session_start`` (first event), ``session_end`` (last
        event), ``duration_seconds`` (``session_end - session_start``, 0 for a single event),
        ``events``, and ``session_window`` (Spark's session window struct, ``end`` = last event +
        gap; :func:`session_engagement` uses it to chain on a stream).

    Examples
    --------
    >>> import datetime as dt
    >>> t = dt.datetime(2024, 1, 1, 9)
    >>> df = spark.createDataFrame(
    ...     [("1", "a", "u", t), ("2", "a", "u", t + dt.timedelta(minutes=10)),
    ...      ("3", "a", "u", t + dt.timedelta(hours=2))],
    ...     "event_id string, account_id string, user_id string, event_time timestamp")
    >>> [(r.session_start.hour, r.duration_seconds, r.events)
    ...  for r in sessionize(df).orderBy("session_start").collect()]
    [(9, 600.0, 2), (11, 0.0, 1)]
    """
    from pyspark.sql import functions as F

    func = "sessionize"
    gap_text, _ = check_duration(func, "gap", gap)
    delay, _ = check_duration(func, "watermark", watermark)
    check_flag(func, "dedupe", dedupe)
    require_columns(df, func, account_col=(account_col, "any"), user_col=(user_col, "any"))
    require_columns(df, func, time_col=(time_col, "timestamp"))
    if account_col == user_col:
        raise SchemaError(f"{func}(): account_col= and user_col= must differ, both {user_col!r}")
    if dedupe:
        require_columns(df, func, event_id_col=(event_id_col, "any"))
        events = _dedupe(df, event_id_col, time_col, delay)
    else:
        events = df.withWatermark(time_col, delay)
    sessions = events.groupBy(
        account_col, user_col, F.session_window(time_col, gap_text).alias("session_window")
    ).agg(
        F.min(time_col).alias("session_start"),
        F.max(time_col).alias("session_end"),
        F.count(F.lit(1)).alias("events"),
    )
    duration = (F.unix_micros("session_end") - F.unix_micros("session_start")) / F.lit(1e6)
    return sessions.select(
        account_col,
        user_col,
        "session_start",
        "session_end",
        duration.cast("double").alias("duration_seconds"),
        "events",
        "session_window",
    )


def session_engagement(
    sessions: DataFrame,
    *,
    window: str | _dt.timedelta = "1 day",
    account_col: str = "account_id",
    user_col: str = "user_id",
    session_col: str = "session_window",
    duration_col: str = "duration_seconds",
    events_col: str = "events",
) -> DataFrame:
    r"""Per-account engagement per tumbling window, from :func:`sessionize` output.

    A session is attributed to the window in which it *closed*: the window containing
    ``session_window.end`` (last event + gap) minus one microsecond (Spark's
    ``window_time``). This is the only attribution that can be computed on a stream in one
    query (the session's start time carries no watermark), and it is applied identically to
    batch input. For each account and window :math:`[s, s + w)`:

    .. math::

        \text{sessions} = |S|, \quad
        \text{total\_duration\_seconds} = \sum_{x \in S} d_x, \quad
        \text{mean\_duration\_seconds} = \frac{1}{|S|}\sum_{x \in S} d_x, \quad
        \text{active\_users} = |\{u_x : x \in S\}|

    Parameters
    ----------
    sessions : pyspark.sql.DataFrame
        Output of :func:`sessionize` (streaming or batch).
    window : str or datetime.timedelta
        Engagement window length, e.g. ``"1 day"`` or ``"7 days"``.
    account_col, user_col, session_col, duration_col, events_col : str
        Input columns.

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_id``, ``window_start``, ``window_end``, ``sessions``,
        ``total_duration_seconds``, ``mean_duration_seconds``, ``active_users``, ``events``.

    Examples
    --------
    >>> import datetime as dt
    >>> t = dt.datetime(2024, 1, 1, 9)
    >>> df = spark.createDataFrame(
    ...     [("1", "a", "u", t), ("2", "a", "u", t + dt.timedelta(minutes=10)),
    ...      ("3", "a", "v", t + dt.timedelta(hours=2))],
    ...     "event_id string, account_id string, user_id string, event_time timestamp")
    >>> row = session_engagement(sessionize(df)).first()
    >>> (row.sessions, row.total_duration_seconds, row.active_users)
    (2, 600.0, 2)
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    func = "session_engagement"
    length, _ = check_duration(func, "window", window)
    require_columns(
        sessions,
        func,
        account_col=(account_col, "any"),
        user_col=(user_col, "any"),
        session_col=(session_col, "any"),
    )
    require_columns(
        sessions, func, duration_col=(duration_col, "numeric"), events_col=(events_col, "numeric")
    )
    window_type = sessions.schema[session_col].dataType
    names = [f.name for f in window_type.fields] if isinstance(window_type, T.StructType) else []
    if "start" not in names or "end" not in names:
        raise SchemaError(
            f"{func}(): column {session_col!r} must be a session window struct<start, end> "
            f"(the session_window column of sessionize()), found {window_type.simpleString()}"
        )
    if sessions.isStreaming:
        closed = F.window_time(session_col)
    else:
        closed = F.col(f"{session_col}.end") - F.expr("INTERVAL 1 MICROSECOND")
    grouped = sessions.groupBy(account_col, F.window(closed, length).alias("__kamlib_w")).agg(
        F.count(F.lit(1)).alias("sessions"),
        F.sum(duration_col).cast("double").alias("total_duration_seconds"),
        F.size(F.collect_set(user_col)).alias("active_users"),
        F.sum(events_col).alias("events"),
    )
    return grouped.select(
        account_col,
        F.col("__kamlib_w.start").alias("window_start"),
        F.col("__kamlib_w.end").alias("window_end"),
        "sessions",
        "total_duration_seconds",
        F.try_divide(F.col("total_duration_seconds"), F.col("sessions")).alias(
            "mean_duration_seconds"
        ),
        F.col("active_users").cast("long").alias("active_users"),
        F.col("events").cast("long").alias("events"),
    )
