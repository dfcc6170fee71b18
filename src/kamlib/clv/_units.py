"""Time units of the CLV models, defined once.

``rfm_summary`` measures ``recency`` and ``T`` in days (``"D"``) or fractional weeks
(``"W"``); CLV horizons are months, converted to the model's unit with lifetimes' factors
(30 days or 4.345 weeks per month, so kamlib's CLV equals lifetimes' for the same model).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DAYS_PER_UNIT", "MONTH_FACTOR", "ClvFreq", "Freq"]

#: Unit of ``recency`` and ``T`` in :func:`kamlib.clv.rfm_summary`: days or weeks.
Freq = Literal["D", "W"]

#: Time unit of the models' ``T`` and ``recency`` in CLV: days, weeks, months or hours.
ClvFreq = Literal["D", "W", "M", "H"]

#: Days per unit of :data:`Freq`.
DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": 7.0}

#: Units per month, as in lifetimes' ``customer_lifetime_value``.
MONTH_FACTOR: dict[str, float] = {"D": 30.0, "W": 4.345, "M": 1.0, "H": 30.0 * 24.0}
