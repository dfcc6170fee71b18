"""Score DataFrames with numpy functions through Arrow batches (``mapInArrow``).

Used only where Spark has no native expression (hypergeometric functions in the CLV models,
for example). The function runs on the executors, batch by batch, so no per-account data
reaches the driver, and it works the same on classic Spark and Spark Connect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

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
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import DoubleType, StructField, StructType

    input_names = list(inputs)
    output_names = list(outputs)
    keep = [f for f in df.schema.fields if f.name not in output_names]
    out_schema = StructType(keep + [StructField(o, DoubleType(), True) for o in output_names])
    arrow_schema = to_arrow_schema(out_schema)
    keep_names = [f.name for f in keep]
    staged = df.select(*keep_names, *[f"`{c}`" for c in input_names if c not in keep_names])

    def apply(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        import pyarrow.compute as pc

        for batch in batches:
            values = {
                name: np.asarray(
                    pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False),
                    dtype=np.float64,
                )
                for name in input_names
            }
            result = func(values) if batch.num_rows else {o: np.empty(0) for o in output_names}
            arrays = [batch.column(name) for name in keep_names]
            for name in output_names:
                out = np.asarray(result[name], dtype=np.float64)
                out = np.broadcast_to(out, (batch.num_rows,))
                arrays.append(pa.array(out, type=pa.float64(), mask=~np.isfinite(out)))
            yield pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)

    return staged.mapInArrow(apply, out_schema)
