"""Event schemas for streaming inputs.

Fields marked non-nullable are *required*: :func:`kamlib.streaming.decode_json` quarantines a
record that lacks one of them or carries it with the wrong type.
"""

from __future__ import annotations

from kamlib._spark import check_pyspark

try:
    from pyspark.sql.types import (
        DoubleType,
        IntegerType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )
except ImportError:  # pragma: no cover - exercised in a subprocess without pyspark
    check_pyspark()  # one clear ImportError naming the extras
    raise

__all__ = ["ORDER_EVENT", "SURVEY_EVENT", "USAGE_EVENT"]

#: An order (or refund, negative amount) placed by an account.
ORDER_EVENT = StructType(
    [
        StructField("event_id", StringType(), nullable=False),
        StructField("account_id", StringType(), nullable=False),
        StructField("event_time", TimestampType(), nullable=False),
        StructField("amount", DoubleType(), nullable=False),
        StructField("currency", StringType(), nullable=True),
    ]
)

#: An NPS survey response; ``score`` must be an integer 0..10.
SURVEY_EVENT = StructType(
    [
        StructField("event_id", StringType(), nullable=False),
        StructField("account_id", StringType(), nullable=False),
        StructField("event_time", TimestampType(), nullable=False),
        StructField("score", IntegerType(), nullable=False),
    ]
)

#: A product usage event by one user of an account (for sessionization).
USAGE_EVENT = StructType(
    [
        StructField("event_id", StringType(), nullable=False),
        StructField("account_id", StringType(), nullable=False),
        StructField("user_id", StringType(), nullable=False),
        StructField("event_time", TimestampType(), nullable=False),
        StructField("feature", StringType(), nullable=True),
    ]
)
