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

    Raised before any Spark job runs. The structured fields say what went wrong and the
    message is built from them when none is given:
    ``"{function}(): column {column!r} (argument {argument}=) must be {expected}, found {found}"``.

    Attributes
    ----------
    function : str or None
        The public function that rejected the input, e.g. ``"nps"``.
    argument : str or None
        The keyword argument at fault (``"value_col"``, ``"by"``, ...).
    column : str or None
        The DataFrame column at fault, if any.
    expected : str or None
        What was expected, in words (``"numeric"``, ``"> 0"``).
    found : str or None
        What was found, in words (a type name or the ``repr`` of the value).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        function: str | None = None,
        argument: str | None = None,
        column: str | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        self.function = function
        self.argument = argument
        self.column = column
        self.expected = expected
        self.found = found
        super().__init__(message if message is not None else self._build())

    def _build(self) -> str:
        where = f"{self.function}(): " if self.function else ""
        if self.column is not None:
            subject = f"column {self.column!r}"
            if self.argument:
                subject += f" (argument {self.argument}=)"
        elif self.argument:
            subject = f"{self.argument}="
        else:
            subject = "input"
        text = f"{where}{subject} must be {self.expected or 'valid'}"
        if self.found is not None:
            text += f", found {self.found}"
        return text


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
