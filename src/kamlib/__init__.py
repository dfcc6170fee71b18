"""kamlib: typed Key Account Management metrics on Apache Spark.

Plain DataFrame transformations (``f(df, *, options) -> DataFrame``) that chain with
``df.transform``: key-account classification, customer lifetime value, share of wallet,
NPS and CSAT, retention, churn features, account health and the account scorecard, plus
Structured Streaming helpers. Works on classic PySpark and on Spark Connect.

PySpark is an optional dependency; install ``kamlib[spark]`` or ``kamlib[connect]`` or use
your platform's pyspark (>= 4.0). ``import kamlib``, the errors, the numpy model cores, model
JSON loading and ``kamlib --version`` work without it; the first module that needs Spark raises
one :class:`ImportError` naming the extras.
"""

from __future__ import annotations

from kamlib._version import __version__
from kamlib.errors import (
    ConnectorUnavailableError,
    ConvergenceError,
    KamlibError,
    NotFittedError,
    SchemaError,
)

__all__ = [
    "ConnectorUnavailableError",
    "ConvergenceError",
    "KamlibError",
    "NotFittedError",
    "SchemaError",
    "__version__",
]
