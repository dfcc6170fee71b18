"""Run lifetimes 0.11.3 on a staged transaction log (executed inside its own throwaway venv).

    <venv>/bin/python benchmarks/_lifetimes_anchor.py PARQUET_DIR OBSERVATION_END

Prints one JSON object: seconds per step (summary, BG/NBD fit, Gamma-Gamma fit, 12-month CLV),
the total, the peak RSS of this process and the CLV sum (to check both tools agree).
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    path, end = sys.argv[1], sys.argv[2]
    tx = pd.read_parquet(path, columns=["account_id", "order_date", "amount"])
    tx["order_date"] = pd.to_datetime(tx["order_date"])
    steps: dict[str, float] = {}
    start = time.perf_counter()
    summary = summary_data_from_transaction_data(
        tx, "account_id", "order_date", monetary_value_col="amount", observation_period_end=end
    )
    steps["summary"] = time.perf_counter() - start
    t = time.perf_counter()
    bg = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    steps["bgnbd_fit"] = time.perf_counter() - t
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    t = time.perf_counter()
    gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    steps["gamma_gamma_fit"] = time.perf_counter() - t
    t = time.perf_counter()
    clv = gg.customer_lifetime_value(
        bg,
        summary["frequency"],
        summary["recency"],
        summary["T"],
        summary["monetary_value"],
        time=12,
        discount_rate=0.01,
        freq="D",
    )
    steps["clv_12m"] = time.perf_counter() - t
    total = time.perf_counter() - start
    print(
        json.dumps(
            {
                "steps": steps,
                "total_seconds": total,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "clv_sum": float(clv.sum()),
                "accounts": len(summary),
            }
        )
    )


if __name__ == "__main__":
    main()
