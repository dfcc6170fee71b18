"""Datasets: the CDNOW sample (shipped) and a reproducible synthetic KAM generator.

- :func:`load_cdnow`: the 1/10 CDNOW sample (2,357 customers, 1997-01 .. 1998-06) used by
  Fader, Hardie and Lee (2005) in the standard transactions shape.
- :func:`load_cdnow_summary`: the published calibration summary of that sample (39 weeks).
- :func:`synthetic_transactions`: a transaction log drawn from a known BG/NBD + Gamma-Gamma
  process, generated inside Spark (scales to tens of millions of accounts), reproducible by seed.
- :func:`synthetic_portfolio`: a B2B key-account portfolio (contracts, invoices, products,
  surveys, wallets, targets, hierarchy) with documented GRR/NRR/NPS/Pareto truth.
- :func:`synthetic_surveys`, :func:`synthetic_wallets`, :func:`synthetic_usage`,
  :func:`synthetic_targets`: companion tables for the other metric families.
"""

from __future__ import annotations

from kamlib.datasets._cdnow import load_cdnow, load_cdnow_summary
from kamlib.datasets._portfolio import Portfolio, synthetic_portfolio
from kamlib.datasets._synthetic import (
    SyntheticTruth,
    synthetic_surveys,
    synthetic_targets,
    synthetic_transactions,
    synthetic_usage,
    synthetic_wallets,
)

__all__ = [
    "Portfolio",
    "SyntheticTruth",
    "load_cdnow",
    "load_cdnow_summary",
    "synthetic_portfolio",
    "synthetic_surveys",
    "synthetic_targets",
    "synthetic_transactions",
    "synthetic_usage",
    "synthetic_wallets",
]
