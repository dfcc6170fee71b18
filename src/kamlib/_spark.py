"""PySpark availability and version checks (pyspark is an extra, never a hard dependency)."""

from __future__ import annotations

import importlib

__all__ = ["MIN_PYSPARK", "check_pyspark", "is_remote"]

MIN_PYSPARK = (4, 0)

_INSTALL_HINT = (
    "kamlib needs PySpark >= 4.0. Install it with one of the extras: "
    "pip install 'kamlib[spark]' (local or classic Spark), "
    "pip install 'kamlib[connect]' (Spark Connect thin client, e.g. serverless platforms), "
    "or use the pyspark your Spark platform provides."
)


def _parse_version(text: str) -> tuple[int, int]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


def check_pyspark() -> str:
    """Check that a supported PySpark is importable and return its version.

    Returns
    -------
    str
        The installed PySpark version.

    Raises
    ------
    ImportError
        If PySpark is missing (the message names kamlib's extras) or older than 4.0
        (the message gives the version found).
    """
    try:
        pyspark = importlib.import_module("pyspark")
    except ImportError as exc:
        raise ImportError(f"PySpark is not installed. {_INSTALL_HINT}") from exc
    version = str(getattr(pyspark, "__version__", "0.0"))
    if _parse_version(version) < MIN_PYSPARK:
        raise ImportError(f"kamlib found PySpark {version}, which is too old. {_INSTALL_HINT}")
    return version


def is_remote() -> bool:
    """Return whether the current process talks to Spark through Spark Connect."""
    from pyspark.sql.utils import is_remote as _is_remote

    return bool(_is_remote())
