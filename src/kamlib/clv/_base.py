"""Shared machinery of fitted CLV models: fitted-state checks and JSON persistence.

Models persist as JSON only (never pickle): ``{"kamlib_model": <type>, "format_version": 1,
"kamlib_version": ..., "settings": {...}, "params": {...}, "fit": {...}}``. Python floats
round-trip exactly through JSON, so a loaded model predicts exactly like the saved one.

Loading treats the document as untrusted: at most :data:`MAX_DOCUMENT_CHARS` characters and
:data:`MAX_DEPTH` levels of nesting, every field of the expected JSON type, every parameter a
finite number inside the model's domain (:attr:`FittedModel.param_lower_bounds`, default
``> 0``; Gamma-Gamma's ``q > 1``, where its expected spend is finite). Every problem raises
:class:`~kamlib.errors.ModelFormatError` naming the bad field.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from kamlib._validation import check_positive
from kamlib._version import __version__
from kamlib.errors import KamlibError, ModelFormatError, NotFittedError, SchemaError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from pyspark.sql import DataFrame

__all__ = [
    "FORMAT_VERSION",
    "FittedModel",
    "SpendModel",
    "TransactionModel",
    "check_model",
    "load_model",
    "model_from_json",
]

FORMAT_VERSION = 1
#: Largest model document :func:`model_from_json` reads (characters).
MAX_DOCUMENT_CHARS = 1_000_000
#: Deepest nesting of objects/arrays it accepts.
MAX_DEPTH = 16
_REGISTRY: dict[str, type[FittedModel]] = {}
M = TypeVar("M", bound="FittedModel")


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0


class FittedModel:
    """Base class of kamlib's fitted models (BG/NBD, Pareto/NBD, Gamma-Gamma, sBG, ...).

    Subclasses set ``model_type`` and ``param_names``, store fitted parameters with
    :meth:`_set_fitted`, and list their constructor settings in :meth:`_settings`.
    """

    model_type: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ()
    #: Exclusive lower bound of each parameter (default 0: every parameter positive).
    param_lower_bounds: ClassVar[Mapping[str, float]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.model_type:
            _REGISTRY[cls.model_type] = cls

    def __init__(self) -> None:
        self._params: dict[str, float] | None = None
        self._fit_info: dict[str, Any] = {}

    # -- fitted state -------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """Constructor keyword arguments, JSON-serialisable (override in subclasses)."""
        return {}

    def _set_fitted(self, params: Mapping[str, float], **fit_info: Any) -> None:
        self._params = {name: float(params[name]) for name in self.param_names}
        self._fit_info = dict(fit_info)

    def _require_fitted(self, method: str) -> dict[str, float]:
        if self._params is None:
            raise NotFittedError(
                f"{type(self).__name__}.{method}(): the model is not fitted; call fit() first "
                f"or load fitted parameters with kamlib.clv.load_model()"
            )
        return self._params

    @property
    def is_fitted(self) -> bool:
        """Whether the model has parameters (fitted or loaded)."""
        return self._params is not None

    @property
    def params(self) -> dict[str, float]:
        """Fitted parameters as a new dict (raises :class:`NotFittedError` before fit)."""
        return dict(self._require_fitted("params"))

    @property
    def log_likelihood(self) -> float:
        """Maximised log-likelihood of the fit (including weights/counts, excluding penalty)."""
        self._require_fitted("log_likelihood")
        return float(self._fit_info.get("log_likelihood", math.nan))

    @property
    def n_params(self) -> int:
        """Number of estimated parameters ``k`` (covariate coefficients included)."""
        return len(self.param_names)

    @property
    def aic(self) -> float:
        """Akaike information criterion ``2 k - 2 LL`` (``k`` = :attr:`n_params`)."""
        return 2.0 * self.n_params - 2.0 * self.log_likelihood

    @property
    def bic(self) -> float:
        """Bayesian information criterion ``k ln(N) - 2 LL``, ``N`` = accounts (sum of weights)."""
        loglik = self.log_likelihood
        n = float(self._fit_info.get("n", math.nan))
        return self.n_params * math.log(n) - 2.0 * loglik if n > 0 else math.nan

    @property
    def standard_errors(self) -> dict[str, float]:
        """Standard errors of the parameters from the inverse Hessian of the log-likelihood."""
        self._require_fitted("standard_errors")
        return dict(self._fit_info.get("standard_errors", {}))

    @property
    def fit_info(self) -> dict[str, Any]:
        """Everything recorded at fit time (iterations, optimiser message, n, ...)."""
        self._require_fitted("fit_info")
        return dict(self._fit_info)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        if self._params is None:
            return f"{type(self).__name__}({settings}) <not fitted>"
        fitted = ", ".join(f"{k}={v:.4g}" for k, v in self._params.items())
        return f"{type(self).__name__}({settings}) <fitted: {fitted}>"

    # -- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the model (type, format and kamlib version, params)."""
        params = self._require_fitted("to_json")
        return {
            "kamlib_model": self.model_type,
            "format_version": FORMAT_VERSION,
            "kamlib_version": __version__,
            "settings": self._settings(),
            "params": dict(params),
            "fit": _jsonable(self._fit_info),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """Serialise the fitted model to a JSON string (no pickle)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=True)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` atomically (temporary file + rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def from_dict(cls: type[M], document: Mapping[str, Any]) -> M:
        """Rebuild a model from :meth:`to_dict` output, checking its type and version."""
        model = _from_document(document)
        if cls is not FittedModel and not isinstance(model, cls):
            raise KamlibError(
                f"{cls.__name__}.from_json(): the document holds a "
                f"{document.get('kamlib_model')!r} model, not {cls.model_type!r}"
            )
        return model  # type: ignore[return-value]

    @classmethod
    def from_json(cls: type[M], text: str) -> M:
        """Rebuild a model of this class from :meth:`to_json` output."""
        return cls.from_dict(_parse(text))

    @classmethod
    def load(cls: type[M], path: str | os.PathLike[str]) -> M:
        """Load a model of this class saved with :meth:`save`."""
        return cls.from_json(_read(path))


class _PenalizedModel(FittedModel):
    """A :class:`FittedModel` whose one constructor setting is an L2 ``penalizer`` (>= 0).

    The shared base of the maximum-likelihood models (BG/NBD family, Gamma-Gamma, BG/BB):
    it checks and stores the penalizer, lists it as the model's settings and reads the fitted
    parameters as a tuple in :attr:`~FittedModel.param_names` order.
    """

    def __init__(self, penalizer: float = 0.0) -> None:
        super().__init__()
        self.penalizer = check_positive(
            type(self).__name__, "penalizer", penalizer, allow_zero=True
        )

    def _settings(self) -> dict[str, Any]:
        return {"penalizer": self.penalizer}

    def _p(self, method: str) -> tuple[float, ...]:
        """The fitted parameters in ``param_names`` order (``NotFittedError`` naming ``method``)."""
        params = self._require_fitted(method)
        return tuple(params[name] for name in self.param_names)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _read(path: str | os.PathLike[str]) -> str:
    data = Path(path).read_bytes()[: MAX_DOCUMENT_CHARS * 4 + 1]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFormatError("$", f"{os.fspath(path)} is not UTF-8 text ({exc.reason})") from None


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _parse(text: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ModelFormatError("$", f"expected a JSON string, found {type(text).__name__}")
    if len(text) > MAX_DOCUMENT_CHARS:
        raise ModelFormatError("$", f"document larger than {MAX_DOCUMENT_CHARS:,} characters")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFormatError("$", f"not a JSON document ({exc})") from None
    except RecursionError:
        raise ModelFormatError("$", f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(document, dict):
        raise ModelFormatError("$", "expected a JSON object describing a kamlib model")
    if _depth(document) > MAX_DEPTH:
        raise ModelFormatError("$", f"nested deeper than {MAX_DEPTH} levels")
    return document


def _number(path: str, value: Any, lower: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFormatError(path, f"expected a number, found {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ModelFormatError(path, f"expected a finite number, found {number!r}")
    if not number > lower:
        raise ModelFormatError(path, f"expected a number > {lower:g}, found {number!r}")
    return number


def _params(cls: type[FittedModel], params: Any) -> dict[str, float]:
    if not isinstance(params, Mapping) or set(params) != set(cls.param_names):
        raise ModelFormatError(
            "params", f"a {cls.model_type} model needs params {list(cls.param_names)}"
        )
    return {
        name: _number(f"params.{name}", params[name], cls.param_lower_bounds.get(name, 0.0))
        for name in cls.param_names
    }


def _mapping(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, Mapping):
        raise ModelFormatError(key, f"expected an object, found {type(value).__name__}")
    return dict(value)


def _from_document(document: Mapping[str, Any]) -> FittedModel:
    model_type = document.get("kamlib_model")
    if model_type not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise KamlibError(
            f"model_from_json(): unknown model type {model_type!r}; known types: {known}"
        )
    saved_with = document.get("kamlib_version", "0")
    if not isinstance(saved_with, str):
        raise ModelFormatError("kamlib_version", "expected a string")
    if _major(saved_with) > _major(__version__):
        raise KamlibError(
            f"model_from_json(): the model was saved by kamlib {saved_with}, a newer major "
            f"version than this kamlib {__version__}; upgrade kamlib to load it"
        )
    fmt = document.get("format_version", FORMAT_VERSION)
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise KamlibError(
            f"model_from_json(): unsupported model format_version {fmt!r} "
            f"(this kamlib reads up to {FORMAT_VERSION})"
        )
    cls = _REGISTRY[str(model_type)]
    settings = _mapping(document, "settings")
    try:
        model = cls(**settings)
    except (TypeError, ValueError) as exc:  # unknown keyword, or a setting the class rejects
        raise ModelFormatError("settings", str(exc)) from None
    model._set_fitted(_params(cls, document.get("params")), **_mapping(document, "fit"))
    return model


def model_from_json(text: str) -> FittedModel:
    """Rebuild any kamlib model from a JSON string written by ``model.to_json()``."""
    return _from_document(_parse(text))


def load_model(path: str | os.PathLike[str]) -> FittedModel:
    """Load any kamlib model saved with ``model.save(path)``."""
    return model_from_json(_read(path))


@runtime_checkable
class TransactionModel(Protocol):
    """A fitted continuous-time transaction model: what CLV and the scorecard call.

    :class:`~kamlib.clv.BetaGeo`, :class:`~kamlib.clv.ModifiedBetaGeo` and
    :class:`~kamlib.clv.ParetoNBD` satisfy it; so can a user's own model.
    """

    @property
    def params(self) -> dict[str, float]:
        """Fitted parameters by name."""
        ...

    def conditional_expected_purchases_np(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> NDArray[np.float64]:
        """Expected purchases in ``(T, T + t]`` given the history (numpy)."""
        ...

    def probability_alive_np(self, frequency: Any, recency: Any, T: Any) -> NDArray[np.float64]:
        """P(alive at T | history) (numpy)."""
        ...

    def expected_purchases(
        self,
        df: DataFrame,
        t: float,
        *,
        frequency_col: str = ...,
        recency_col: str = ...,
        T_col: str = ...,
        output_col: str = ...,
    ) -> DataFrame:
        """Add the conditional expected purchases in the next ``t`` units."""
        ...

    def probability_alive(
        self,
        df: DataFrame,
        *,
        frequency_col: str = ...,
        recency_col: str = ...,
        T_col: str = ...,
        output_col: str = ...,
    ) -> DataFrame:
        """Add P(alive)."""
        ...

    def probability_no_purchase(
        self,
        df: DataFrame,
        t: float,
        *,
        frequency_col: str = ...,
        recency_col: str = ...,
        T_col: str = ...,
        output_col: str = ...,
    ) -> DataFrame:
        """Add P(no purchase in the next ``t`` units)."""
        ...


@runtime_checkable
class PurchaseCountModel(Protocol):
    """A fitted model's population distribution of purchases: what the diagnostics call.

    ``period_transactions``, ``probability_of_purchases`` and ``purchase_tracking`` read
    :math:`P(X(t) = n)` and :math:`E[X(t)]` for a new account (no history).
    """

    @property
    def params(self) -> dict[str, float]:
        """Fitted parameters by name."""
        ...

    def probability_of_purchases_np(self, n: Any, t: Any) -> NDArray[np.float64]:
        """P(X(t) = n) for a new account (numpy)."""
        ...

    def expected_purchases_np(self, t: Any) -> NDArray[np.float64]:
        """E[X(t)] for a new account (numpy)."""
        ...


class CovariateTransactionModel(TransactionModel, Protocol):
    """A transaction model fitted with covariates (:class:`~kamlib.clv.BetaGeo` with covariates)."""

    @property
    def covariate_columns(self) -> tuple[str, ...]:
        """Columns the predictions read (empty when fitted without covariates)."""
        ...

    def conditional_expected_purchases_np(
        self,
        t: Any,
        frequency: Any,
        recency: Any,
        T: Any,
        *,
        covariates: Mapping[str, Any] | None = None,
    ) -> NDArray[np.float64]:
        """Expected purchases in ``(T, T + t]``; ``covariates`` maps column -> array."""
        ...


class IntervalModel(TransactionModel, Protocol):
    """A transaction model with prediction intervals (``interval=`` of the CLV and scoring)."""

    def predictive_interval_np(
        self, t: float, frequency: Any, recency: Any, T: Any, *, interval: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Lower and upper bounds of the purchases in the next ``t`` units (numpy)."""
        ...


def covariate_columns(model: object) -> tuple[str, ...]:
    """The covariate columns a fitted model reads (empty for models without covariates)."""
    return tuple(getattr(model, "covariate_columns", ()) or ())


@runtime_checkable
class SpendModel(Protocol):
    """A fitted spend model (:class:`~kamlib.clv.GammaGamma`): what CLV and the scorecard call."""

    @property
    def params(self) -> dict[str, float]:
        """Fitted parameters by name."""
        ...

    def expected_spend_np(self, frequency: Any, monetary_value: Any) -> NDArray[np.float64]:
        """Conditional expected spend per transaction (numpy)."""
        ...

    def expected_spend(
        self,
        df: DataFrame,
        *,
        frequency_col: str = ...,
        monetary_value_col: str = ...,
        recency_col: str = ...,
        T_col: str = ...,
        output_col: str = ...,
    ) -> DataFrame:
        """Add the conditional expected spend per transaction."""
        ...


def check_model(
    func: str,
    arg: str,
    model: object,
    protocol: type[Any],
    *,
    methods: tuple[str, ...] | None = None,
) -> None:
    """Raise :class:`SchemaError` unless ``model`` can serve as a ``protocol``.

    With ``methods`` only those (the ones the caller uses) are required, so duck-typed models
    work; without, every method of the protocol. Then the parameters are read, so an unfitted
    model raises :class:`~kamlib.errors.NotFittedError`, all before any Spark job. Catches a
    model passed as a string, a path or an unrelated object (load saved models first).
    """
    if methods is None:
        ok = isinstance(model, protocol)
    else:
        ok = all(callable(getattr(model, m, None)) for m in methods)
    if not ok:
        extra = f" (with {', '.join(methods)})" if methods else ""
        raise SchemaError(
            function=func,
            argument=arg,
            expected=f"a fitted {protocol.__name__}{extra}; load saved models with load_model()",
            found=type(model).__name__,
        )
    _ = getattr(model, "params", None)  # NotFittedError before any Spark job
