"""Score DataFrames with numpy functions through Arrow batches (a scalar Arrow UDF).

Used only where Spark has no native expression (hypergeometric functions in the CLV models,
for example). The function runs on the executors, batch by batch, so no per-account data
reaches the driver, and it works the same on classic Spark and Spark Connect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from kamlib._validation import TEMP_PREFIX

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

__all__ = ["NumpyFunc", "with_numpy_columns"]

#: Takes the input columns as float64 arrays (nulls as NaN) and returns output arrays.
NumpyFunc = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def with_numpy_columns(
    df: DataFrame,
    func: NumpyFunc,
    *,
    inputs: Sequence[str],
    outputs: Sequence[str],
) -> DataFrame:
    """Append (or replace) float64 ``outputs`` computed by ``func`` from ``inputs``.

    On PySpark 4.1+ ``func`` runs in one scalar Arrow UDF returning a struct of the outputs,
    so only the inputs travel to Python and back (on a wide frame such as the scorecard this
    halves the cost of the pass); on 4.0 it runs in ``mapInArrow``, which ships every column.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Input; all its columns pass through unchanged (an existing column named like an output
        is replaced).
    func : callable
        ``func({name: float64 array}) -> {output: float64 array}``; must be picklable
        (a module-level function or a closure over plain values). NaN or inf results become null.
    inputs, outputs : sequence of str
        Input column names (cast to double) and output column names.

    Returns
    -------
    pyspark.sql.DataFrame
    """
    input_names, output_names = list(inputs), list(outputs)
    try:
        from pyspark.sql.pandas.functions import arrow_udf
    except ImportError:  # PySpark 4.0
        return _map_in_arrow(df, func, input_names, output_names)
    from pyspark.sql import functions as F

    keep = [f"`{f.name}`" for f in df.schema.fields if f.name not in output_names]

    struct = ", ".join(f"`{name}` double" for name in output_names)

    # Unannotated on purpose: PySpark reads a UDF's kind from resolvable type hints, and
    # pyarrow is imported lazily here; without hints an Arrow UDF is scalar.
    def scored(batch):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        import pyarrow as pa

        values = {
            name: np.asarray(batch.field(i).to_numpy(zero_copy_only=False), dtype=np.float64)
            for i, name in enumerate(input_names)
        }
        n = len(batch)
        arrays = _output_arrays(func(values) if n else {}, output_names, n)
        return pa.StructArray.from_arrays(arrays, names=output_names)

    result = f"{TEMP_PREFIX}scored"
    args = F.struct(*[F.col(f"`{name}`").cast("double").alias(name) for name in input_names])
    udf = arrow_udf(scored, f"struct<{struct}>")  # type: ignore[call-overload]
    staged = df.select(*keep, udf(args).alias(result))
    return staged.select(*keep, *[f"`{result}`.`{name}`" for name in output_names])


def _output_arrays(result: Mapping[str, np.ndarray], outputs: list[str], n: int) -> list[pa.Array]:
    """The outputs of one batch as float64 Arrow arrays of length ``n`` (NaN and inf as null)."""
    import pyarrow as pa

    if not n:
        return [pa.array([], type=pa.float64()) for _ in outputs]

    arrays = []
    for name in outputs:
        out = np.broadcast_to(np.asarray(result[name], dtype=np.float64), (n,))
        arrays.append(pa.array(out, type=pa.float64(), mask=~np.isfinite(out)))
    return arrays


def _map_in_arrow(
    df: DataFrame, func: NumpyFunc, inputs: list[str], outputs: list[str]
) -> DataFrame:
    """:func:`with_numpy_columns` through ``mapInArrow`` (PySpark 4.0: no scalar Arrow UDF)."""
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import DoubleType, StructField, StructType

    keep = [f for f in df.schema.fields if f.name not in outputs]
    out_schema = StructType(keep + [StructField(o, DoubleType(), True) for o in outputs])
    arrow_schema = to_arrow_schema(out_schema)
    keep_names = [f.name for f in keep]
    staged = df.select(
        *[f"`{c}`" for c in keep_names], *[f"`{c}`" for c in inputs if c not in keep_names]
    )

    def apply(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        import pyarrow.compute as pc

        for batch in batches:
            values = {
                name: np.asarray(
                    pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False),
                    dtype=np.float64,
                )
                for name in inputs
            }
            n = batch.num_rows
            arrays = [batch.column(name) for name in keep_names]
            arrays += _output_arrays(func(values) if n else {}, outputs, n)
            yield pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)

    return staged.mapInArrow(apply, out_schema)
