"""Exceptions raised by kamlib.

Every error kamlib raises on purpose derives from :class:`KamlibError`, so callers can catch
the library's errors in one place. Each concrete class also derives from the built-in that
describes the failure (``ValueError`` for bad input, ``RuntimeError`` for failures at run time),
so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "ConnectorUnavailableError",
    "ConvergenceError",
    "KamlibError",
    "ModelFormatError",
    "NotFittedError",
    "SchemaError",
]


class KamlibError(Exception):
    """Base class of every error raised by kamlib."""


class SchemaError(KamlibError, ValueError):
    """A DataFrame or argument does not have the columns, types or values a function needs.

    Raised before any Spark job runs. The message names the function, the offending column
    (or argument), what was expected and what was found.
    """


class ConvergenceError(KamlibError, RuntimeError):
    """A model fit did not converge; the message carries the optimiser's own message."""


class NotFittedError(KamlibError, RuntimeError):
    """A model method that needs fitted parameters was called before ``fit``."""


class ConnectorUnavailableError(KamlibError, RuntimeError):
    """A Spark connector (Kafka, Delta, ...) is not on the classpath.

    The message names the package coordinate or Python package to add.
    """


class ModelFormatError(KamlibError, ValueError):
    """A model document (JSON) is malformed, too large or too deep, or has invalid values.

    ``path`` names the bad field (``"params.q"``, ``"settings"``, ``"$"`` for the document).
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"model_from_json(): {path}: {problem}")
