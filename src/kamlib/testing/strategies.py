"""Hypothesis strategies for KAM data: transaction logs, survey responses, wallets.

Each strategy draws a *list of row dicts* (one test case) that can be turned into a Spark
DataFrame with :func:`kamlib.testing.to_dataframe` and the matching schema constant. To keep
Spark property tests fast, draw many cases, tag each with a ``case`` id and put them all in ONE
DataFrame, then run the transformation with ``by="case"``.

Requires the ``hypothesis`` package (``pip install 'kamlib[test]'``).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without hypothesis
    raise ImportError(
        "kamlib.testing.strategies needs hypothesis: pip install 'kamlib[test]'"
    ) from exc

__all__ = [
    "SURVEY_SCHEMA",
    "TRANSACTION_SCHEMA",
    "WALLET_SCHEMA",
    "account_ids",
    "survey_responses",
    "transactions",
    "wallets",
]

#: DDL schema of rows drawn by :func:`transactions`.
TRANSACTION_SCHEMA = "account_id string, order_date date, amount double"
#: DDL schema of rows drawn by :func:`survey_responses`.
SURVEY_SCHEMA = "account_id string, response_date date, score double, weight double"
#: DDL schema of rows drawn by :func:`wallets`.
WALLET_SCHEMA = "account_id string, spend double, wallet double"


def account_ids(max_accounts: int = 8) -> st.SearchStrategy[str]:
    """Account ids ``"a0"``, ``"a1"``, ... (a small alphabet so accounts repeat)."""
    return st.integers(min_value=0, max_value=max_accounts - 1).map(lambda i: f"a{i}")


@st.composite
def transactions(
    draw: st.DrawFn,
    *,
    min_rows: int = 0,
    max_rows: int = 30,
    max_accounts: int = 6,
    start: _dt.date = _dt.date(2024, 1, 1),
    max_days: int = 400,
    allow_refunds: bool = True,
    integer_amounts: bool = True,
    allow_null_amounts: bool = False,
) -> list[dict[str, Any]]:
    """Draw a transaction log: rows of ``account_id``, ``order_date``, ``amount``.

    Parameters
    ----------
    min_rows, max_rows : int
        Size of the log.
    max_accounts : int
        Accounts are drawn from ``a0 .. a{max_accounts-1}``.
    start : datetime.date
        First possible order date; dates fall in ``[start, start + max_days)``.
    max_days : int
        Span of possible dates.
    allow_refunds : bool
        Allow negative amounts (refunds).
    integer_amounts : bool
        Draw whole amounts, so sums are exact in floating point (recommended for references).
    allow_null_amounts : bool
        Sometimes draw a null amount.
    """
    low = -200 if allow_refunds else 0
    amount: st.SearchStrategy[Any]
    if integer_amounts:
        amount = st.integers(min_value=low, max_value=1000).map(float)
    else:
        amount = st.floats(min_value=low, max_value=1000, allow_nan=False, allow_infinity=False)
    if allow_null_amounts:
        amount = st.one_of(st.none(), amount)
    row = st.fixed_dictionaries(
        {
            "account_id": account_ids(max_accounts),
            "order_date": st.integers(min_value=0, max_value=max_days - 1).map(
                lambda d: start + _dt.timedelta(days=d)
            ),
            "amount": amount,
        }
    )
    return draw(st.lists(row, min_size=min_rows, max_size=max_rows))


@st.composite
def survey_responses(
    draw: st.DrawFn,
    *,
    min_rows: int = 0,
    max_rows: int = 40,
    max_accounts: int = 6,
    allow_invalid: bool = True,
    weighted: bool = False,
) -> list[dict[str, Any]]:
    """Draw NPS survey responses: ``account_id``, ``response_date``, ``score``, ``weight``.

    With ``allow_invalid`` some scores are null, fractional (7.5) or out of range (-1, 11),
    and (when ``weighted``) some weights are null or negative: kamlib must exclude and
    count them, never drop them silently.
    """
    valid = st.integers(min_value=0, max_value=10).map(float)
    score: st.SearchStrategy[Any] = valid
    if allow_invalid:
        score = st.one_of(valid, valid, valid, st.none(), st.sampled_from([-1.0, 11.0, 7.5, 100.0]))
    weight: st.SearchStrategy[Any] = st.just(1.0)
    if weighted:
        good = st.integers(min_value=0, max_value=5).map(float)
        weight = st.one_of(good, good, st.none(), st.just(-1.0)) if allow_invalid else good
    row = st.fixed_dictionaries(
        {
            "account_id": account_ids(max_accounts),
            "response_date": st.integers(min_value=0, max_value=365).map(
                lambda d: _dt.date(2024, 1, 1) + _dt.timedelta(days=d)
            ),
            "score": score,
            "weight": weight,
        }
    )
    return draw(st.lists(row, min_size=min_rows, max_size=max_rows))


@st.composite
def wallets(
    draw: st.DrawFn,
    *,
    min_rows: int = 0,
    max_rows: int = 20,
    allow_invalid: bool = True,
) -> list[dict[str, Any]]:
    """Draw share-of-wallet inputs: ``account_id``, ``spend``, ``wallet`` (one row per account).

    With ``allow_invalid``, some wallets are null, zero or negative and some spends are null.
    """
    money = st.integers(min_value=0, max_value=10_000).map(float)
    spend: st.SearchStrategy[Any] = money
    wallet: st.SearchStrategy[Any] = money.map(lambda v: v + 1.0)
    if allow_invalid:
        spend = st.one_of(money, money, money, st.none())
        wallet = st.one_of(money, money, money, st.none(), st.just(0.0), st.just(-5.0))
    n = draw(st.integers(min_value=min_rows, max_value=max_rows))
    return [{"account_id": f"a{i}", "spend": draw(spend), "wallet": draw(wallet)} for i in range(n)]
