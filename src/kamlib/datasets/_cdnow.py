"""The CDNOW sample shipped with kamlib."""

from __future__ import annotations

import datetime as _dt
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from kamlib.errors import KamlibError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["CDNOW_SCHEMA", "load_cdnow", "load_cdnow_summary"]

CDNOW_SCHEMA = "account_id string, order_date date, quantity int, amount double, master_id string"
_SUMMARY_SCHEMA = (
    "account_id string, frequency double, recency double, T double, monetary_value double"
)


def _read_text(name: str) -> str:
    return (
        resources.files("kamlib.datasets")
        .joinpath("data")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


def _parse_cdnow(text: str) -> list[tuple[str, _dt.date, int, float, str]]:
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        master, sample_id, day, quantity, value = parts[:5]
        date = _dt.date(int(day[:4]), int(day[4:6]), int(day[6:8]))
        rows.append((str(int(sample_id)), date, int(quantity), float(value), master))
    return rows


def load_cdnow(spark: SparkSession, sample: bool = True, *, path: str | None = None) -> DataFrame:
    """Load the CDNOW transaction log in kamlib's transactions shape.

    Columns: ``account_id`` (string, the sample's customer number ``"1"`` .. ``"2357"``, the
    ``ID`` of the published summary :func:`load_cdnow_summary` and the id BTYD uses),
    ``order_date`` (date), ``quantity`` (number of CDs), ``amount`` (dollar value) and
    ``master_id`` (the zero-padded customer id of the full CDNOW master file).

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session to create the DataFrame in (classic or Spark Connect).
    sample : bool
        ``True`` (default) loads the shipped 1/10 sample: 2,357 customers, 6,919 rows, purchases
        from 1997-01-01 to 1998-06-30. ``False`` loads the full CDNOW master file, which is not
        shipped: pass its location as ``path``.
    path : str, optional
        A CDNOW file in the original whitespace-separated format
        (``customer_id sub_id YYYYMMDD number_of_cds dollar_value``).

    Returns
    -------
    pyspark.sql.DataFrame

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting Your Customers the Easy Way:
    An Alternative to the Pareto/NBD Model". Marketing Science 24(2), 275-284.

    Examples
    --------
    >>> from kamlib.datasets import load_cdnow
    >>> load_cdnow(spark).count()  # doctest: +SKIP
    6919
    """
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
    elif sample:
        text = _read_text("CDNOW_sample.txt")
    else:
        raise KamlibError(
            "load_cdnow(): only the 1/10 sample ships with kamlib; for the full CDNOW log pass "
            "path= pointing to CDNOW_master.txt"
        )
    return spark.createDataFrame(_parse_cdnow(text), schema=CDNOW_SCHEMA)


def load_cdnow_summary(spark: SparkSession) -> DataFrame:
    """Load the published CDNOW calibration summary (39 weeks ending 1997-09-30).

    Columns follow :func:`kamlib.clv.rfm_summary` with ``freq="W"``: ``frequency`` (repeat
    purchase days, x), ``recency`` (t_x, weeks), ``T`` (weeks) and ``monetary_value``
    (mean repeat spend, zbar).
    """
    lines = _read_text("cdnow_customers_summary_with_transactions.csv").splitlines()[1:]
    rows = []
    for line in lines:
        if not line.strip():
            continue
        ident, x, t_x, t_cap, zbar = line.split(",")[:5]
        rows.append((ident, float(x), float(t_x), float(t_cap), float(zbar)))
    return spark.createDataFrame(rows, schema=_SUMMARY_SCHEMA)
