"""Customer lifetime value at Spark scale.

RFM summaries, BG/NBD, Pareto/NBD, Modified BG/NBD, Gamma-Gamma, shifted-beta-geometric
contractual retention and discounted CLV.
"""

from __future__ import annotations

import importlib
from typing import Any

from kamlib.clv._base import FittedModel, load_model, model_from_json

# Public names resolved lazily from the submodules that define them.
_SUBMODULES = ("summary", "models", "contractual", "value", "diagnostics")


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(name)
    for sub in _SUBMODULES:
        try:
            module = importlib.import_module(f"{__name__}.{sub}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{sub}":
                continue
            raise
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FittedModel", "load_model", "model_from_json"]
