r"""A churn classifier on :func:`kamlib.churn.training_frame` output, validated on a later date.

:func:`fit_churn_model` trains a Spark ML classifier (``pyspark.ml``, so it runs on classic
Spark and on Spark Connect) on the rows of a stacked training frame whose label window has
closed before ``validation_as_of``, and measures it on the rows *at or after*
``validation_as_of``: a time split, so the reported AUC is what the model achieves on a cutoff
it has never seen. The fitted :class:`ChurnModel` scores any frame with the same feature
columns (``predict`` adds ``churn_probability``) and persists with Spark ML's own format plus a
small JSON document (no pickle), to any path Spark writes (local, ``s3a://``, ...).

Time split (no leakage): with horizon :math:`h` days, a training row at cutoff :math:`c`
reads its label from :math:`[c, c + h)`; requiring :math:`c + h \le` ``validation_as_of``
means no training label looks at days the validation features or labels use.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pyspark.sql import functions as F

from kamlib._validation import check_choice, parse_timestamp, require_columns
from kamlib.churn import assemble_features, feature_columns, vector_slots
from kamlib.errors import ConvergenceError, KamlibError, SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["Algorithm", "ChurnModel", "fit_churn_model"]

#: Classifiers :func:`fit_churn_model` can train.
Algorithm = Literal["logistic", "gbt", "random_forest"]

_FORMAT = "kamlib.churn_model/1"
_FEATURES_COL = "__kamlib_features"
_LABEL_COL = "__kamlib_label"
_RAW = "__kamlib_raw"
_PROB = "__kamlib_probability"
_PRED = "__kamlib_prediction"


def _estimator(algorithm: str, seed: int, max_iter: int) -> Any:
    from pyspark.ml.classification import (
        GBTClassifier,
        LogisticRegression,
        RandomForestClassifier,
    )

    estimator: Any
    if algorithm == "logistic":
        estimator = LogisticRegression(maxIter=max_iter, regParam=0.01, standardization=True)
    elif algorithm == "random_forest":
        estimator = RandomForestClassifier(numTrees=max_iter, seed=seed)
    else:
        estimator = GBTClassifier(maxIter=max_iter, seed=seed)
    return (
        estimator.setFeaturesCol(_FEATURES_COL)
        .setLabelCol(_LABEL_COL)
        .setPredictionCol(_PRED)
        .setProbabilityCol(_PROB)
        .setRawPredictionCol(_RAW)
    )


def _model_class(algorithm: str) -> Any:
    from pyspark.ml.classification import (
        GBTClassificationModel,
        LogisticRegressionModel,
        RandomForestClassificationModel,
    )

    return {
        "logistic": LogisticRegressionModel,
        "random_forest": RandomForestClassificationModel,
        "gbt": GBTClassificationModel,
    }[algorithm]


def _auc(scored: DataFrame, metric: Literal["areaUnderROC", "areaUnderPR"]) -> float:
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol=_RAW, labelCol=_LABEL_COL, metricName=metric
    )
    return float(evaluator.evaluate(scored))


class ChurnModel:
    """A fitted churn classifier (see :func:`fit_churn_model`).

    Attributes
    ----------
    algorithm : str
        ``"logistic"``, ``"gbt"`` or ``"random_forest"``.
    features : list of str
        Feature columns the model reads (cast to double, nulls filled, missing indicators).
    slots : list of str
        Names of the feature-vector slots (``{feature}_is_null`` for indicators).
    metrics : dict
        ``auc_roc``, ``auc_pr`` on the validation rows, ``train_rows``, ``validation_rows``,
        ``train_churn_rate``, ``validation_churn_rate``, ``validation_as_of``,
        ``horizon_days``.
    """

    def __init__(
        self,
        *,
        algorithm: str,
        features: Sequence[str],
        slots: Sequence[str],
        missing_indicators: bool,
        fill_value: float,
        metrics: dict[str, Any],
        model: Any,
    ) -> None:
        self.algorithm = algorithm
        self.features = list(features)
        self.slots = list(slots)
        self.missing_indicators = missing_indicators
        self.fill_value = fill_value
        self.metrics = dict(metrics)
        self._model = model

    def __repr__(self) -> str:
        auc = self.metrics.get("auc_roc")
        shown = "n/a" if auc is None else f"{auc:.3f}"
        n = len(self.features)
        return f"ChurnModel(algorithm={self.algorithm!r}, features={n}, auc_roc={shown})"

    @property
    def churn_windows(self) -> tuple[int, ...]:
        """The feature windows (days) of :func:`kamlib.churn.churn_features` the model reads."""
        found = {
            int(m.group(1)) for f in self.features if (m := re.fullmatch(r"n_orders_(\d+)d", f))
        }
        return tuple(sorted(found))

    def _vectors(self, df: DataFrame, label_col: str | None) -> DataFrame:
        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise SchemaError(
                f"ChurnModel.predict(): the frame lacks the model's feature columns {missing}; "
                f"build it with the same training_frame/churn_features options as the training data"
            )
        return assemble_features(
            df,
            features=self.features,
            fill_value=self.fill_value,
            missing_indicators=self.missing_indicators,
            features_col=_FEATURES_COL,
            label_col=label_col,
            output_label_col=_LABEL_COL,
        )

    def predict(self, df: DataFrame, *, output_col: str = "churn_probability") -> DataFrame:
        """Add ``output_col``: the predicted probability that the account churns.

        Lazy: a transformation, no Spark job runs. ``df`` needs the model's feature columns
        (e.g. :func:`kamlib.churn.churn_features` at the scoring date with the same windows).

        Examples
        --------
        >>> scored = model.predict(features)  # doctest: +SKIP
        """
        from pyspark.ml.functions import vector_to_array

        if output_col in df.columns:
            raise SchemaError(f"ChurnModel.predict(): output_col={output_col!r} already exists")
        scored: DataFrame = self._model.transform(self._vectors(df, None))
        return scored.withColumn(output_col, vector_to_array(F.col(_PROB)).getItem(1)).drop(
            _FEATURES_COL, _RAW, _PROB, _PRED
        )

    def evaluate(self, df: DataFrame, *, label_col: str = "churned") -> dict[str, float]:
        """AUC-ROC and AUC-PR of the model on a labelled frame (runs Spark jobs)."""
        require_columns(df, "ChurnModel.evaluate", label_col=(label_col, "boolean"))
        scored = self._model.transform(
            self._vectors(df.where(F.col(label_col).isNotNull()), label_col)
        )
        return {"auc_roc": _auc(scored, "areaUnderROC"), "auc_pr": _auc(scored, "areaUnderPR")}

    def _document(self) -> str:
        return json.dumps(
            {
                "format": _FORMAT,
                "algorithm": self.algorithm,
                "features": self.features,
                "slots": self.slots,
                "missing_indicators": self.missing_indicators,
                "fill_value": self.fill_value,
                "metrics": self.metrics,
            },
            sort_keys=True,
        )

    def save(self, path: str, *, overwrite: bool = False) -> None:
        """Persist with Spark ML's format (``{path}/model``) plus ``{path}/kamlib`` (JSON text).

        Works for any path Spark writes (local, ``s3a://``, ...); no pickle, no Python file
        APIs.
        """
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:  # pragma: no cover - a fitted model implies a session
            raise KamlibError("ChurnModel.save(): no active SparkSession")
        writer = self._model.write()
        (writer.overwrite() if overwrite else writer).save(f"{path}/model")
        meta = spark.createDataFrame([(self._document(),)], "value string").coalesce(1)
        meta.write.mode("overwrite" if overwrite else "errorifexists").text(f"{path}/kamlib")

    @classmethod
    def load(cls, path: str, *, spark: SparkSession | None = None) -> ChurnModel:
        """Load a model written by :meth:`save`; the JSON document is validated."""
        from pyspark.sql import SparkSession

        session = spark or SparkSession.getActiveSession()
        if session is None:
            raise KamlibError("ChurnModel.load(): no active SparkSession; pass spark=")
        rows = session.read.text(f"{path}/kamlib").collect()
        doc = _parse_document(path, [r.value for r in rows])
        model = _model_class(doc["algorithm"]).load(f"{path}/model")
        return cls(
            algorithm=doc["algorithm"],
            features=doc["features"],
            slots=doc["slots"],
            missing_indicators=doc["missing_indicators"],
            fill_value=doc["fill_value"],
            metrics=doc["metrics"],
            model=model,
        )


def _parse_document(path: str, lines: list[str]) -> dict[str, Any]:
    def bad(why: str) -> KamlibError:
        return KamlibError(f"ChurnModel.load(): {path}/kamlib is not a kamlib churn model ({why})")

    if len(lines) != 1:
        raise bad(f"expected one JSON line, found {len(lines)}")
    try:
        doc = json.loads(lines[0])
    except ValueError as exc:
        raise bad(f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise bad(f"format is not {_FORMAT!r}")
    if doc.get("algorithm") not in ("logistic", "gbt", "random_forest"):
        raise bad("unknown algorithm")
    for key in ("features", "slots"):
        value = doc.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"{key} must be a list of strings")
    if not isinstance(doc.get("missing_indicators"), bool):
        raise bad("missing_indicators must be a boolean")
    if not isinstance(doc.get("fill_value"), (int, float)) or isinstance(doc["fill_value"], bool):
        raise bad("fill_value must be a number")
    if not isinstance(doc.get("metrics"), dict):
        raise bad("metrics must be an object")
    return doc


def fit_churn_model(
    frame: DataFrame,
    *,
    validation_as_of: _dt.date | _dt.datetime | str,
    horizon_days: int = 90,
    algorithm: Algorithm = "gbt",
    features: Sequence[str] | None = None,
    account_col: str = "account_id",
    as_of_col: str = "as_of",
    label_col: str = "churned",
    missing_indicators: bool = True,
    fill_value: float = 0.0,
    max_iter: int = 50,
    seed: int = 0,
) -> ChurnModel:
    r"""Train a churn classifier on a training frame and validate it on a later cutoff.

    Training rows: cutoff :math:`c` with :math:`c + h \le` ``validation_as_of`` (their label
    window :math:`[c, c + h)` closes before the validation cutoff, so nothing leaks).
    Validation rows: cutoff :math:`\ge` ``validation_as_of``. Rows with a null label are
    ignored. The reported ``auc_roc`` / ``auc_pr`` (Spark ML's ``BinaryClassificationEvaluator``)
    are measured on the validation rows only.

    Eager by design (a model fit): it reads the frame several times; cache it first if it is
    expensive to recompute.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        :func:`kamlib.churn.training_frame` output with several ``as_of`` dates.
    validation_as_of : date, datetime or str
        First validation cutoff.
    horizon_days : int
        The label horizon the frame was built with (default 90, as ``training_frame``).
    algorithm : {"logistic", "gbt", "random_forest"}
        Logistic regression (L2 0.01, standardised), gradient-boosted trees or a random
        forest; ``max_iter`` is the number of iterations / trees.
    features : sequence of str, optional
        Feature columns (default :func:`kamlib.churn.feature_columns`).
    account_col, as_of_col, label_col : str
        Column names.
    missing_indicators, fill_value
        Null handling, as :func:`kamlib.churn.assemble_features`.
    max_iter, seed : int
        Estimator settings.

    Returns
    -------
    ChurnModel
        With ``metrics`` filled.

    Raises
    ------
    SchemaError
        Bad columns or options (before any job).
    ConvergenceError
        No training or validation rows, or a single class in the training rows.

    References
    ----------
    Neslin, S. A. et al. (2006). Defection detection: measuring and understanding the
    predictive accuracy of customer churn models. *Journal of Marketing Research* 43(2).

    Examples
    --------
    >>> dates = ["2024-01-01", "2024-04-01", "2024-07-01"]
    >>> tf = training_frame(tx, as_of_dates=dates)  # doctest: +SKIP
    >>> model = fit_churn_model(tf, validation_as_of="2024-07-01")  # doctest: +SKIP
    >>> model.metrics["auc_roc"]  # doctest: +SKIP
    """
    func = "fit_churn_model"
    algorithm = _check_fit_options(func, algorithm, horizon_days=horizon_days, max_iter=max_iter)
    cutoff = parse_timestamp(func, "validation_as_of", validation_as_of)
    require_columns(
        frame,
        func,
        account_col=(account_col, "any"),
        as_of_col=(as_of_col, "temporal"),
        label_col=(label_col, "boolean"),
    )
    names = (
        list(features) if features is not None else feature_columns(frame, account_col=account_col)
    )
    names = [n for n in names if n not in (as_of_col, label_col)]
    slots = vector_slots(
        frame, features=names, account_col=account_col, missing_indicators=missing_indicators
    )
    train, valid = _split(frame, cutoff, horizon_days, as_of_col=as_of_col, label_col=label_col)
    model = ChurnModel(
        algorithm=algorithm,
        features=names,
        slots=slots,
        missing_indicators=missing_indicators,
        fill_value=float(fill_value),
        metrics={},
        model=None,
    )
    train_v = model._vectors(train, label_col)
    valid_v = model._vectors(valid, label_col)
    counts = _checked_counts(
        func, train_v, valid_v, cutoff, horizon_days, as_of_col=as_of_col, label_col=label_col
    )
    model._model = _estimator(algorithm, seed, max_iter).fit(train_v)
    model.metrics = _metrics(model._model.transform(valid_v), counts, cutoff, horizon_days)
    return model


def _check_fit_options(
    func: str, algorithm: Algorithm, *, horizon_days: int, max_iter: int
) -> Algorithm:
    """The checked algorithm; ``horizon_days`` and ``max_iter`` are positive integers."""
    checked: Algorithm = check_choice(func, "algorithm", algorithm, Algorithm)
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days <= 0:
        raise SchemaError(
            f"{func}(): horizon_days= must be a positive integer, found {horizon_days!r}"
        )
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter <= 0:
        raise SchemaError(f"{func}(): max_iter= must be a positive integer, found {max_iter!r}")
    return checked


def _split(
    frame: DataFrame,
    cutoff: _dt.datetime,
    horizon_days: int,
    *,
    as_of_col: str,
    label_col: str,
) -> tuple[DataFrame, DataFrame]:
    """Labelled training rows (label window closed by ``cutoff``) and validation rows."""
    labelled = frame.where(F.col(label_col).isNotNull())
    as_of = F.col(as_of_col).cast("timestamp")
    train = labelled.where(as_of <= F.lit(cutoff - _dt.timedelta(days=horizon_days)))
    valid = labelled.where(as_of >= F.lit(cutoff))
    return train, valid


def _checked_counts(
    func: str,
    train_v: DataFrame,
    valid_v: DataFrame,
    cutoff: _dt.datetime,
    horizon_days: int,
    *,
    as_of_col: str,
    label_col: str,
) -> dict[str, tuple[int, int]]:
    """(rows, positives) of both parts; ConvergenceError when one is empty or single-class."""
    counts = {
        "train": _class_counts(train_v),
        "validation": _class_counts(valid_v),
    }
    for part, (n, positives) in counts.items():
        if n == 0:
            raise ConvergenceError(
                f"{func}(): no {part} rows (training: {as_of_col} <= validation_as_of - "
                f"{horizon_days} days; validation: {as_of_col} >= {cutoff.date()})"
            )
        if part == "train" and positives in (0, n):
            raise ConvergenceError(
                f"{func}(): the {n} training rows all have {label_col}={positives == n}; "
                "a classifier needs both classes"
            )
    return counts


def _metrics(
    scored: DataFrame, counts: dict[str, tuple[int, int]], cutoff: _dt.datetime, horizon_days: int
) -> dict[str, Any]:
    """Validation AUCs, row counts and churn rates of the fit."""
    return {
        "auc_roc": _auc(scored, "areaUnderROC"),
        "auc_pr": _auc(scored, "areaUnderPR"),
        "train_rows": counts["train"][0],
        "validation_rows": counts["validation"][0],
        "train_churn_rate": counts["train"][1] / counts["train"][0],
        "validation_churn_rate": counts["validation"][1] / counts["validation"][0],
        "validation_as_of": cutoff.isoformat(),
        "horizon_days": horizon_days,
    }


def _class_counts(df: DataFrame) -> tuple[int, int]:
    row = df.agg(
        F.count(F.lit(1)).alias("n"), F.coalesce(F.sum(F.col(_LABEL_COL)), F.lit(0.0)).alias("p")
    ).first()
    assert row is not None
    return int(row["n"]), int(row["p"])
