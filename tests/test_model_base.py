"""JSON persistence base of fitted models, and the Arrow numpy scoring helper."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pytest

from kamlib import KamlibError, NotFittedError
from kamlib._arrow import _chunks, _map_in_arrow, with_numpy_columns
from kamlib.clv import load_model, model_from_json
from kamlib.clv._base import FittedModel


class _Toy(FittedModel):
    model_type: ClassVar[str] = "_ToyForTests"
    param_names: ClassVar[tuple[str, ...]] = ("a", "b")

    def __init__(self, *, penalizer: float = 0.0) -> None:
        super().__init__()
        self.penalizer = penalizer

    def _settings(self) -> dict[str, Any]:
        return {"penalizer": self.penalizer}


def test_not_fitted():
    toy = _Toy()
    with pytest.raises(NotFittedError, match=r"_Toy.params\(\): the model is not fitted"):
        _ = toy.params
    with pytest.raises(NotFittedError):
        toy.to_json()
    assert "not fitted" in repr(toy)


def test_round_trip_exact(tmp_path):
    toy = _Toy(penalizer=0.1)
    toy._set_fitted({"a": 0.1 + 0.2, "b": 1 / 3}, log_likelihood=-12.5, iterations=7)
    text = toy.to_json()
    doc = json.loads(text)
    assert doc["kamlib_model"] == "_ToyForTests"
    assert "kamlib_version" in doc
    back = model_from_json(text)
    assert isinstance(back, _Toy)
    assert back.params == toy.params  # exact float round trip
    assert back.penalizer == 0.1
    assert back.log_likelihood == -12.5
    toy.save(tmp_path / "m.json")
    assert load_model(tmp_path / "m.json").params == toy.params
    assert _Toy.load(tmp_path / "m.json").params == toy.params


def test_wrong_type_and_newer_major(tmp_path):
    toy = _Toy()
    toy._set_fitted({"a": 1.0, "b": 2.0})
    doc = toy.to_dict()
    doc["kamlib_model"] = "Nope"
    with pytest.raises(KamlibError, match="unknown model type 'Nope'"):
        model_from_json(json.dumps(doc))
    doc = toy.to_dict()
    doc["kamlib_version"] = "99.0.0"
    with pytest.raises(KamlibError, match="newer major version"):
        model_from_json(json.dumps(doc))
    with pytest.raises(KamlibError, match="not a JSON document"):
        model_from_json("{")


@pytest.mark.connect
def test_with_numpy_columns(spark):
    # Defined inside the test so cloudpickle ships it by value (the Connect server's Python
    # workers cannot import the tests package).
    def _double(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        twice = 2 * cols["x"]
        return {"twice": twice, "ratio": cols["x"] / cols["y"], "x": twice}

    df = spark.createDataFrame(
        [("a", 1, 2.0), ("b", None, 4.0), ("c", 3, 0.0)], "k string, x int, y double"
    )
    scored = with_numpy_columns(df, _double, inputs=["x", "y"], outputs=["twice", "ratio"])
    fallback = _map_in_arrow(df, _double, ["x", "y"], ["twice", "ratio"])  # PySpark 4.0
    for out in (scored, fallback):
        _check_doubled(out)
    replaced = with_numpy_columns(df, _double, inputs=["x", "y"], outputs=["x", "ratio"])
    assert replaced.columns == ["k", "y", "x", "ratio"]
    assert sorted(r["x"] for r in replaced.collect() if r["x"] is not None) == [2.0, 6.0]
    empty = with_numpy_columns(df.limit(0), _double, inputs=["x", "y"], outputs=["twice", "ratio"])
    assert empty.collect() == []


def test_chunks_regroup_batches_up_to_the_limit():
    import pyarrow as pa

    def batch(n: int, start: int) -> pa.StructArray:
        return pa.StructArray.from_arrays([pa.array(range(start, start + n))], names=["v"])

    sizes = [3, 3, 3, 10, 1, 2]
    batches, start = [], 0
    for n in sizes:
        batches.append(batch(n, start))
        start += n
    chunks = list(_chunks(iter(batches), 7))
    assert [len(c) for c in chunks] == [6, 3, 10, 3]  # at most 7, a larger batch on its own
    assert pa.concat_arrays(chunks).field(0).to_pylist() == list(range(sum(sizes)))
    assert list(_chunks(iter([]), 7)) == []


def test_with_numpy_columns_over_many_batches(spark):
    """Regrouped Arrow batches keep every row with its own output (order and count)."""

    def _plus(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": cols["x"] + 0.5}

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
    try:
        df = spark.range(1000).selectExpr("id", "CAST(id AS DOUBLE) AS x").repartition(3)
        for rows in (1, 50, None):
            out = with_numpy_columns(df, _plus, inputs=["x"], outputs=["y"], chunk_rows=rows)
            got = out.collect()
            assert len(got) == 1000
            assert all(r["y"] == r["id"] + 0.5 for r in got)
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")


def _check_doubled(out: Any) -> None:
    assert out.columns == ["k", "x", "y", "twice", "ratio"]
    rows = {r["k"]: r for r in out.collect()}
    assert rows["a"]["twice"] == 2.0
    assert rows["a"]["ratio"] == 0.5
    assert rows["b"]["twice"] is None  # null input -> NaN -> null
    assert rows["c"]["ratio"] is None  # inf -> null, never a silent inf
