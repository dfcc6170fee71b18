"""Per-account anomaly alerts on KPI tables (revenue, orders, sessions, NPS detractors).

Rules (frozen dataclasses, so they pickle for ``foreachBatch`` on Spark Connect):

* :class:`DropRule`: a metric falls below ``ratio`` times its trailing baseline;
* :class:`SpikeRule`: a metric rises above ``ratio`` times its trailing baseline;
* :class:`DetractorBurstRule`: many detractors in one window of an NPS table.

:func:`evaluate_alerts` applies rules to a *batch* KPI table (one row per account and window,
such as the output of :func:`~kamlib.streaming.windowed_revenue`,
:func:`~kamlib.streaming.session_engagement` or :func:`~kamlib.streaming.streaming_nps` with
``by="account_id"``).

Streaming
---------
A trailing baseline needs the previous windows of each account, which a streaming aggregation
does not keep. Evaluate alerts per micro-batch instead: in ``foreachBatch``, the micro-batch
of newly closed KPI windows is combined with the KPI table written so far (a batch read) or a
static baseline table. :func:`new_alerts` does that for one batch and :func:`alerts_each_batch`
builds a picklable ``foreachBatch`` function around it that hands the alerts to a sink (give it
an idempotent sink keyed on the batch id, since a replayed batch recomputes the same alerts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from kamlib._validation import check_fraction, check_int, check_positive, require_columns
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "ALERT_COLUMNS",
    "AlertBatchEvaluator",
    "DetractorBurstRule",
    "DropRule",
    "SpikeRule",
    "alerts_each_batch",
    "evaluate_alerts",
    "new_alerts",
]

#: Output columns of :func:`evaluate_alerts` (after the account column).
ALERT_COLUMNS = (
    "window_start",
    "window_end",
    "rule",
    "metric",
    "value",
    "baseline",
    "threshold",
    "severity",
    "message",
)


@dataclass(frozen=True)
class _RatioRule:
    """Fields shared by :class:`DropRule` and :class:`SpikeRule` (a ratio to a trailing mean)."""

    metric: str
    ratio: float
    baseline_windows: int = 7
    min_baseline: float = 0.0
    min_history: int | None = None
    severity: str = "warning"
    name: str | None = None
    _SUFFIX: ClassVar[str] = ""

    @property
    def rule_name(self) -> str:
        """The rule name used in alert rows."""
        return self.name or f"{self.metric}_{self._SUFFIX}"


@dataclass(frozen=True)
class DropRule(_RatioRule):
    r"""Alert when ``metric`` drops below ``ratio`` times its trailing baseline.

    The baseline of window :math:`k` is the mean of the metric over the account's previous
    ``baseline_windows`` windows :math:`k-N..k-1` (fewer at the start of the history, at least
    ``min_history``, default ``N``). It fires when

    .. math::

        b_k > 0, \quad b_k \ge \text{min\_baseline}, \quad v_k < \text{ratio}\cdot b_k.

    Attributes
    ----------
    metric : str
        KPI column, e.g. ``"revenue"``, ``"orders"``, ``"sessions"``, ``"active_users"``.
    ratio : float
        Fraction of the baseline below which the value alerts (0 < ratio < 1).
    baseline_windows : int
        Number of previous windows averaged into the baseline.
    min_baseline : float
        Ignore accounts whose baseline is smaller than this (noise on tiny accounts).
    min_history : int, optional
        Previous windows needed before the rule can fire; default ``baseline_windows``.
    severity : str
        Copied to the alert rows.
    name : str, optional
        Rule name in the alert rows; default ``"<metric>_drop"``.
    """

    ratio: float = 0.5
    _SUFFIX: ClassVar[str] = "drop"


@dataclass(frozen=True)
class SpikeRule(_RatioRule):
    r"""Alert when ``metric`` rises above ``ratio`` times its trailing baseline.

    Same baseline as :class:`DropRule`; fires when :math:`b_k > 0`,
    :math:`b_k \ge \text{min\_baseline}` and :math:`v_k > \text{ratio}\cdot b_k` (ratio > 1).
    Default name ``"<metric>_spike"``.
    """

    ratio: float = 2.0
    _SUFFIX: ClassVar[str] = "spike"


@dataclass(frozen=True)
class DetractorBurstRule:
    r"""Alert on a burst of NPS detractors in one window of one account.

    Fires when :math:`D \ge \text{min\_detractors}` and :math:`D / n \ge \text{share}` in the
    window (``n`` valid responses). The alert's ``value`` is :math:`D`, ``baseline`` is the
    detractor share :math:`D / n` and ``threshold`` is ``min_detractors``.
    """

    min_detractors: int = 3
    share: float = 0.5
    detractors_col: str = "detractors"
    n_col: str = "n"
    severity: str = "critical"
    name: str | None = None

    @property
    def metric(self) -> str:
        """The column the rule reads."""
        return self.detractors_col

    @property
    def rule_name(self) -> str:
        """The rule name used in alert rows."""
        return self.name or "detractor_burst"


Rule = DropRule | SpikeRule | DetractorBurstRule


def _check_ratio_rule(func: str, kpis: DataFrame, rule: _RatioRule) -> None:
    """A DropRule's ratio in (0, 1), a SpikeRule's > 1; window counts >= 1; the metric numeric."""
    kind = type(rule).__name__
    if isinstance(rule, DropRule):
        check_fraction(func, f"{kind}.ratio", rule.ratio, high_inclusive=False)
    elif check_positive(func, f"{kind}.ratio", rule.ratio) <= 1:
        raise SchemaError(
            function=func, argument=f"{kind}.ratio", expected="> 1", found=repr(rule.ratio)
        )
    check_int(func, f"{kind}.baseline_windows", rule.baseline_windows)
    if rule.min_history is not None:
        check_int(func, f"{kind}.min_history", rule.min_history)
    check_positive(func, f"{kind}.min_baseline", rule.min_baseline, allow_zero=True)
    require_columns(kpis, func, metric=(rule.metric, "numeric"))


def _rule_list(func: str, rules: Sequence[Rule] | Rule) -> list[Rule]:
    """``rules`` as a non-empty list of rule objects (one rule is a list of one)."""
    if isinstance(rules, (DropRule, SpikeRule, DetractorBurstRule)):
        return [rules]
    checked = list(rules) if isinstance(rules, Sequence) and not isinstance(rules, str) else [rules]
    if not checked:
        raise SchemaError(f"{func}(): rules= must contain at least one rule, found none")
    for rule in checked:
        if not isinstance(rule, (DropRule, SpikeRule, DetractorBurstRule)):
            raise SchemaError(
                f"{func}(): rules= must hold DropRule, SpikeRule or DetractorBurstRule objects, "
                f"found {type(rule).__name__}"
            )
    return checked


def _check_rules(func: str, kpis: DataFrame, rules: Sequence[Rule] | Rule) -> list[Rule]:
    """:func:`_rule_list` with every rule's options and columns checked against ``kpis``."""
    checked = _rule_list(func, rules)
    for rule in checked:
        if isinstance(rule, _RatioRule):
            _check_ratio_rule(func, kpis, rule)
        else:
            check_int(func, "DetractorBurstRule.min_detractors", rule.min_detractors)
            check_fraction(func, "DetractorBurstRule.share", rule.share, low_inclusive=True)
            require_columns(
                kpis,
                func,
                detractors_col=(rule.detractors_col, "numeric"),
                n_col=(rule.n_col, "numeric"),
            )
    return checked


def _filled(
    values: DataFrame, *, account_col: str, window_col: str, window_end_col: str
) -> DataFrame:
    """``values`` (``_v`` per account and window) with the missing windows as ``0.0``.

    Each account's grid runs from its first window to the last window of any account, in
    steps of its window length.
    """
    from pyspark.sql import functions as F

    start_s = F.unix_seconds(F.col(window_col))
    step_s = F.unix_seconds(F.col(window_end_col)) - start_s
    spans = values.groupBy(account_col).agg(
        F.min(start_s).alias("__kamlib_first"), F.max(step_s).alias("__kamlib_step")
    )
    last = values.agg(F.max(start_s).alias("__kamlib_last"))
    grid = spans.crossJoin(last).select(
        account_col,
        F.explode(F.sequence("__kamlib_first", "__kamlib_last", "__kamlib_step")).alias(
            "__kamlib_s"
        ),
        "__kamlib_step",
    )
    observed = values.select(
        account_col, start_s.alias("__kamlib_s"), F.col("__kamlib_v").alias("__kamlib_obs")
    )
    return grid.join(observed, [account_col, "__kamlib_s"], "left").select(
        account_col,
        F.timestamp_seconds("__kamlib_s").alias(window_col),
        F.timestamp_seconds(F.col("__kamlib_s") + F.col("__kamlib_step")).alias(window_end_col),
        F.coalesce(F.col("__kamlib_obs"), F.lit(0.0)).alias("__kamlib_v"),
    )


def _ratio_alerts(
    kpis: DataFrame,
    rule: _RatioRule,
    *,
    account_col: str,
    window_col: str,
    window_end_col: str,
    fill_missing: bool,
) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    values = kpis.groupBy(account_col, window_col, window_end_col).agg(
        F.sum(F.col(rule.metric).cast("double")).alias("__kamlib_v")
    )
    cols = {"account_col": account_col, "window_col": window_col, "window_end_col": window_end_col}
    series = _filled(values, **cols) if fill_missing else values
    history = (
        Window.partitionBy(account_col)
        .orderBy(F.col(window_col))
        .rowsBetween(-rule.baseline_windows, -1)
    )
    need = rule.baseline_windows if rule.min_history is None else rule.min_history
    staged = series.select(
        account_col,
        window_col,
        window_end_col,
        "__kamlib_v",
        F.avg("__kamlib_v").over(history).alias("__kamlib_b"),
        F.count("__kamlib_v").over(history).alias("__kamlib_h"),
    )
    threshold = F.lit(float(rule.ratio)) * F.col("__kamlib_b")
    value = F.col("__kamlib_v")
    compare = value < threshold if isinstance(rule, DropRule) else value > threshold
    fired = (
        (F.col("__kamlib_h") >= max(need, 1))
        & (F.col("__kamlib_b") > 0)
        & (F.col("__kamlib_b") >= F.lit(float(rule.min_baseline)))
        & compare
    )
    verb = "dropped to" if isinstance(rule, DropRule) else "spiked to"
    return staged.where(fired).select(
        account_col,
        F.col(window_col).alias("window_start"),
        F.col(window_end_col).alias("window_end"),
        F.lit(rule.rule_name).alias("rule"),
        F.lit(rule.metric).alias("metric"),
        F.col("__kamlib_v").alias("value"),
        F.col("__kamlib_b").alias("baseline"),
        threshold.alias("threshold"),
        F.lit(rule.severity).alias("severity"),
        F.format_string(
            f"{rule.metric} {verb} %.2f against a trailing baseline of %.2f "
            f"(threshold %.2f, {rule.baseline_windows} windows)",
            F.col("__kamlib_v"),
            F.col("__kamlib_b"),
            threshold,
        ).alias("message"),
    )


def _burst_alerts(
    kpis: DataFrame,
    rule: DetractorBurstRule,
    *,
    account_col: str,
    window_col: str,
    window_end_col: str,
) -> DataFrame:
    from pyspark.sql import functions as F

    d = F.col(rule.detractors_col).cast("double")
    share = F.try_divide(d, F.col(rule.n_col).cast("double"))
    fired = (
        (F.col(rule.n_col) > 0)
        & (d >= F.lit(float(rule.min_detractors)))
        & (share >= F.lit(float(rule.share)))
    )
    return kpis.where(fired).select(
        account_col,
        F.col(window_col).alias("window_start"),
        F.col(window_end_col).alias("window_end"),
        F.lit(rule.rule_name).alias("rule"),
        F.lit(rule.detractors_col).alias("metric"),
        d.alias("value"),
        share.alias("baseline"),
        F.lit(float(rule.min_detractors)).alias("threshold"),
        F.lit(rule.severity).alias("severity"),
        F.format_string(
            "%d detractors out of %d responses (%.0f%%)",
            F.col(rule.detractors_col).cast("long"),
            F.col(rule.n_col).cast("long"),
            share * 100.0,
        ).alias("message"),
    )


def _validate(
    func: str,
    kpis: DataFrame,
    rules: Sequence[Rule] | Rule,
    account_col: str,
    window_col: str,
    window_end_col: str,
) -> list[Rule]:
    require_columns(kpis, func, account_col=(account_col, "any"))
    require_columns(kpis, func, window_col=(window_col, "timestamp"))
    require_columns(kpis, func, window_end_col=(window_end_col, "timestamp"))
    return _check_rules(func, kpis, rules)


def evaluate_alerts(
    kpis: DataFrame,
    *,
    rules: Sequence[Rule] | Rule,
    account_col: str = "account_id",
    window_col: str = "window_start",
    window_end_col: str = "window_end",
    fill_missing: bool = True,
) -> DataFrame:
    """Apply alert rules to a per-account, per-window KPI table (batch).

    Parameters
    ----------
    kpis : pyspark.sql.DataFrame
        A batch KPI table with ``account_col``, ``window_col``, ``window_end_col`` and the
        rules' metric columns. Rows with the same account and window are summed.
    rules : rule or sequence of rules
        :class:`DropRule`, :class:`SpikeRule`, :class:`DetractorBurstRule`.
    account_col, window_col, window_end_col : str
        Key columns.
    fill_missing : bool
        Treat windows without a row as 0 for drop and spike rules, from each account's first
        window up to the latest window in the table (streaming KPIs only emit windows with
        events, so a drop to zero has no row). Windows are consecutive steps of
        ``window_end - window_start``.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per fired (rule, account, window): ``account_id``, ``window_start``,
        ``window_end``, ``rule``, ``metric``, ``value``, ``baseline``, ``threshold``,
        ``severity``, ``message``.

    Examples
    --------
    >>> import datetime as dt
    >>> days = [dt.datetime(2024, 1, d) for d in range(1, 6)]
    >>> kpis = spark.createDataFrame(
    ...     [("a", d, d + dt.timedelta(days=1), v) for d, v in zip(days, [10., 12., 11., 10., 2.])],
    ...     "account_id string, window_start timestamp, window_end timestamp, revenue double")
    >>> row = evaluate_alerts(kpis, rules=[DropRule("revenue", baseline_windows=3)]).first()
    >>> (row.window_start.day, row.rule, row.value, row.baseline)
    (5, 'revenue_drop', 2.0, 11.0)
    """
    func = "evaluate_alerts"
    if not isinstance(fill_missing, bool):
        raise SchemaError(f"{func}(): fill_missing= must be True or False, found {fill_missing!r}")
    checked = _validate(func, kpis, rules, account_col, window_col, window_end_col)
    if kpis.isStreaming:
        raise SchemaError(
            f"{func}(): kpis must be a batch DataFrame, found a streaming DataFrame; evaluate "
            f"alerts per micro-batch with alerts_each_batch() (trailing baselines need history)"
        )
    parts: list[DataFrame] = []
    for rule in checked:
        if isinstance(rule, DetractorBurstRule):
            parts.append(
                _burst_alerts(
                    kpis,
                    rule,
                    account_col=account_col,
                    window_col=window_col,
                    window_end_col=window_end_col,
                )
            )
        else:
            parts.append(
                _ratio_alerts(
                    kpis,
                    rule,
                    account_col=account_col,
                    window_col=window_col,
                    window_end_col=window_end_col,
                    fill_missing=fill_missing,
                )
            )
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result


def new_alerts(
    history: DataFrame | None,
    batch: DataFrame,
    *,
    rules: Sequence[Rule] | Rule,
    account_col: str = "account_id",
    window_col: str = "window_start",
    window_end_col: str = "window_end",
    fill_missing: bool = True,
) -> DataFrame:
    """Alerts for the windows of one micro-batch of KPI rows, against the KPI history.

    The KPI table is ``history`` (rows already written; may already contain the batch, which
    then replaces them) plus ``batch``; :func:`evaluate_alerts` runs on it and only alerts whose
    ``window_start`` occurs in ``batch`` are kept, so each window alerts once, in the batch that
    closed it.

    Examples
    --------
    >>> import datetime as dt
    >>> d = [dt.datetime(2024, 1, k) for k in range(1, 5)]
    >>> schema = "account_id string, window_start timestamp, window_end timestamp, orders long"
    >>> old = spark.createDataFrame([("a", x, x + dt.timedelta(days=1), 10) for x in d[:3]], schema)
    >>> new = spark.createDataFrame([("a", d[3], d[3] + dt.timedelta(days=1), 1)], schema)
    >>> alerts = new_alerts(old, new, rules=DropRule("orders", baseline_windows=3))
    >>> [r.rule for r in alerts.collect()]
    ['orders_drop']
    """
    from pyspark.sql import functions as F

    func = "new_alerts"
    _validate(func, batch, rules, account_col, window_col, window_end_col)
    table = batch
    if history is not None:
        _validate(func, history, rules, account_col, window_col, window_end_col)
        keys = batch.select(account_col, window_col).distinct()
        kept = history.join(keys, [account_col, window_col], "left_anti")
        table = kept.unionByName(batch, allowMissingColumns=True)
    alerts = evaluate_alerts(
        table,
        rules=rules,
        account_col=account_col,
        window_col=window_col,
        window_end_col=window_end_col,
        fill_missing=fill_missing,
    )
    windows = batch.select(F.col(window_col).alias("window_start")).distinct()
    return alerts.join(windows, ["window_start"], "left_semi")


def _load(load: Callable[[SparkSession], DataFrame], spark: SparkSession) -> DataFrame | None:
    """Run a history loader; a table that does not exist yet (first batch) gives ``None``."""
    try:
        table = load(spark)
        _ = table.schema  # Spark Connect reads lazily: resolve now (no job runs)
        return table
    except Exception as exc:
        if "PATH_NOT_FOUND" in str(exc) or "UNABLE_TO_INFER_SCHEMA" in str(exc):
            return None
        raise


@dataclass(frozen=True)
class AlertBatchEvaluator:
    """``foreachBatch`` function: alerts for each micro-batch of KPI rows, handed to a sink.

    Built by :func:`alerts_each_batch`. For ``(batch_df, batch_id)`` it loads the KPI history
    with ``load_history(batch_df.sparkSession)`` (if given; a table that does not exist yet
    counts as no history), computes :func:`new_alerts` and
    calls ``sink(alerts, batch_id)``; with ``kpi_sink`` it first writes the KPI batch itself.
    """

    rules: tuple[Rule, ...]
    sink: Callable[[DataFrame, int], Any]
    load_history: Callable[[SparkSession], DataFrame] | None = None
    kpi_sink: Callable[[DataFrame, int], Any] | None = None
    account_col: str = "account_id"
    window_col: str = "window_start"
    window_end_col: str = "window_end"
    fill_missing: bool = True

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Evaluate the rules on one micro-batch and write the alerts."""
        history = _load(self.load_history, batch.sparkSession) if self.load_history else None
        alerts = new_alerts(
            history,
            batch,
            rules=self.rules,
            account_col=self.account_col,
            window_col=self.window_col,
            window_end_col=self.window_end_col,
            fill_missing=self.fill_missing,
        )
        if self.kpi_sink is not None:
            self.kpi_sink(batch, batch_id)
        self.sink(alerts, batch_id)


def alerts_each_batch(
    rules: Sequence[Rule] | Rule,
    sink: Callable[[DataFrame, int], Any],
    *,
    load_history: Callable[[SparkSession], DataFrame] | str | None = None,
    kpi_sink: Callable[[DataFrame, int], Any] | None = None,
    account_col: str = "account_id",
    window_col: str = "window_start",
    window_end_col: str = "window_end",
    fill_missing: bool = True,
) -> AlertBatchEvaluator:
    """Build a ``foreachBatch`` function that evaluates alert rules on streaming KPIs.

    Parameters
    ----------
    rules : rule or sequence of rules
        As in :func:`evaluate_alerts`.
    sink : callable
        ``sink(alerts, batch_id)``: the alerts sink (an idempotent writer keyed on batch id).
    load_history : callable or str, optional
        ``load_history(spark) -> DataFrame`` returning the KPI rows written so far (or a static
        baseline table), or a parquet path; module-level functions or
        :class:`kamlib.streaming.ReadTable` pickle for Spark Connect. ``None``: the batch alone.
    kpi_sink : callable, optional
        ``kpi_sink(kpi_batch, batch_id)`` called after the history is read and the alerts are
        computed, e.g. to append the KPI batch to the table that ``load_history`` reads.
    account_col, window_col, window_end_col, fill_missing
        As in :func:`evaluate_alerts`.

    Examples
    --------
    >>> from kamlib.streaming import ReadTable
    >>> evaluator = alerts_each_batch(  # doctest: +SKIP
    ...     [DropRule("revenue"), SpikeRule("revenue")], write_alerts,
    ...     load_history=ReadTable("/out/revenue_daily"), kpi_sink=write_kpis)
    >>> windowed_revenue(stream).writeStream.foreachBatch(evaluator)  # doctest: +SKIP
    """
    from kamlib.streaming.enrich import ReadTable

    func = "alerts_each_batch"
    rule_list = tuple(_rule_list(func, rules))
    if not callable(sink):
        raise SchemaError(f"{func}(): sink= must be a callable, found {sink!r}")
    if kpi_sink is not None and not callable(kpi_sink):
        raise SchemaError(f"{func}(): kpi_sink= must be a callable or None, found {kpi_sink!r}")
    if isinstance(load_history, str):
        load_history = ReadTable(load_history)
    if load_history is not None and not callable(load_history):
        raise SchemaError(
            f"{func}(): load_history= must be a callable, a path or None, found {load_history!r}"
        )
    return AlertBatchEvaluator(
        rules=rule_list,
        sink=sink,
        load_history=load_history,
        kpi_sink=kpi_sink,
        account_col=account_col,
        window_col=window_col,
        window_end_col=window_end_col,
        fill_missing=fill_missing,
    )
