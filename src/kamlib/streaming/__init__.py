"""Structured Streaming helpers for KAM dashboards.

Sources that all return the Kafka record shape (``key``, ``value``, ``topic``, ``partition``,
``offset``, ``timestamp``), JSON decoding that quarantines bad records, streaming KPIs with
watermarks and de-duplication, enrichment, sessionization, alerts, and sinks with checkpoints.
"""

from __future__ import annotations

import importlib
from typing import Any

# Submodules searched (in order) for a public name accessed as ``kamlib.streaming.<name>``.
_SUBMODULES = (
    "sources",
    "decode",
    "sinks",
    "runner",
    "kpis",
    "enrich",
    "sessions",
    "alerts",
)


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
