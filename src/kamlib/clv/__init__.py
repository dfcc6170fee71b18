"""Customer lifetime value at Spark scale.

RFM summaries, BG/NBD, Pareto/NBD, Modified BG/NBD, BG/BB, Gamma-Gamma, shifted-beta-geometric
contractual retention, discounted CLV and fit diagnostics. Spark reduces transactions to small
summaries (distinct tuples with counts); the models are fitted on the driver with scipy and
score DataFrames on the executors, so no per-account data passes through the driver.
"""

from __future__ import annotations

from kamlib.clv._base import (
    FittedModel,
    SpendModel,
    TransactionModel,
    load_model,
    model_from_json,
)
from kamlib.clv.contractual import ShiftedBetaGeo
from kamlib.clv.diagnostics import (
    calibration_holdout_purchases,
    period_transactions,
    probability_of_purchases,
)
from kamlib.clv.discrete import BetaGeoBetaBinom, discrete_rfm_summary
from kamlib.clv.evaluation import compare_models, evaluate_holdout, purchase_tracking
from kamlib.clv.models import BetaGeo, GammaGamma, ModifiedBetaGeo, ParetoNBD
from kamlib.clv.summary import calibration_holdout, rfm_summary
from kamlib.clv.value import customer_lifetime_value

__all__ = [
    "BetaGeo",
    "BetaGeoBetaBinom",
    "FittedModel",
    "GammaGamma",
    "ModifiedBetaGeo",
    "ParetoNBD",
    "ShiftedBetaGeo",
    "SpendModel",
    "TransactionModel",
    "calibration_holdout",
    "calibration_holdout_purchases",
    "compare_models",
    "customer_lifetime_value",
    "discrete_rfm_summary",
    "evaluate_holdout",
    "load_model",
    "model_from_json",
    "period_transactions",
    "probability_of_purchases",
    "purchase_tracking",
    "rfm_summary",
]
