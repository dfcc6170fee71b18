"""Pure-Python reference of lifetimes' RFM summaries (written from lifetimes 0.11.3 utils.py).

``summary_data_from_transaction_data(transactions, id, date, monetary_value_col=value,
observation_period_end=end, freq="D", freq_multiplier=unit)``:

* dates are floored to days (``to_period("D")``), the observation end too; rows after it dropped;
* rows of one (customer, day) are one purchase whose value is their sum;
* frequency = purchase days - 1; recency = (last day - first day) / unit;
  T = (end - first day) / unit; monetary_value = mean of the repeat days' values (0 if none).

``calibration_and_holdout_data(..., calibration_period_end=cal, observation_period_end=end)``:

* the calibration summary is the summary above with ``observation_period_end=cal``;
* holdout rows are cal < day <= end; frequency_holdout = number of distinct holdout days
  (no "- 1"); monetary_value_holdout = mean of the holdout *rows'* values (not day sums: the
  lifetimes code averages the raw rows); customers without holdout rows get 0 and 0;
* duration_holdout = (end - cal) in days / unit; only customers of the calibration summary.

kamlib additionally excludes rows with a null account, date or amount (lifetimes would treat a
null amount as 0): the reference does the same and counts them per account.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

Row = Mapping[str, Any]


def _day(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _valid_amount(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def rfm_summary_reference(
    rows: Iterable[Row],
    *,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    observation_end: Any = None,
    freq: str = "D",
) -> dict[Any, dict[str, float]]:
    """Return ``{account: {frequency, recency, T, monetary_value, n_excluded}}``."""
    unit = {"D": 1.0, "W": 7.0}[freq]
    rows = list(rows)
    dated = [_day(r[date_col]) for r in rows if r[account_col] is not None]
    known = [d for d in dated if d is not None]
    if observation_end is None:
        if not known:
            return {}
        end = max(known)
    else:
        end = _day(observation_end)
        assert end is not None
    days: dict[Any, dict[dt.date, float]] = defaultdict(dict)
    excluded: dict[Any, int] = defaultdict(int)
    for r in rows:
        account = r[account_col]
        if account is None:
            continue
        day = _day(r[date_col])
        if day is not None and day > end:
            continue
        if day is None or not _valid_amount(r[value_col]):
            excluded[account] += 1
            continue
        per_day = days[account]
        per_day[day] = per_day.get(day, 0.0) + float(r[value_col])
    result: dict[Any, dict[str, float]] = {}
    for account, per_day in days.items():
        ordered = sorted(per_day)
        first, last = ordered[0], ordered[-1]
        repeats = [per_day[d] for d in ordered[1:]]
        result[account] = {
            "frequency": float(len(ordered) - 1),
            "recency": (last - first).days / unit,
            "T": (end - first).days / unit,
            "monetary_value": sum(repeats) / len(repeats) if repeats else 0.0,
            "n_excluded": excluded[account],
        }
    return result


def calibration_holdout_reference(
    rows: Iterable[Row],
    *,
    calibration_end: Any,
    observation_end: Any = None,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    freq: str = "D",
    holdout_monetary: str = "rows",
) -> dict[Any, dict[str, float]]:
    """Return ``{account: calibration summary + frequency/monetary_value/duration_holdout}``.

    ``holdout_monetary="rows"``: mean of the holdout rows' amounts; ``"days"``: mean of the
    holdout purchase days' summed amounts.
    """
    unit = {"D": 1.0, "W": 7.0}[freq]
    rows = list(rows)
    cal = _day(calibration_end)
    assert cal is not None
    if observation_end is None:
        known = [_day(r[date_col]) for r in rows if r[account_col] is not None]
        end = max(d for d in known if d is not None)
    else:
        end = _day(observation_end)
        assert end is not None
    summary = rfm_summary_reference(
        rows,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        observation_end=cal,
        freq=freq,
    )
    hold_days: dict[Any, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    hold_values: dict[Any, list[float]] = defaultdict(list)
    for r in rows:
        day = _day(r[date_col])
        if r[account_col] is None or day is None or not _valid_amount(r[value_col]):
            continue
        if cal < day <= end:
            hold_days[r[account_col]][day] += float(r[value_col])
            hold_values[r[account_col]].append(float(r[value_col]))
    for account, row in summary.items():
        values = hold_values.get(account, [])
        if holdout_monetary == "days":
            values = list(hold_days.get(account, {}).values())
        row["frequency_holdout"] = float(len(hold_days.get(account, ())))
        row["monetary_value_holdout"] = sum(values) / len(values) if values else 0.0
        row["duration_holdout"] = (end - cal).days / unit
    return summary
