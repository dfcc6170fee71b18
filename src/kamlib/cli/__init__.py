"""The ``kamlib`` command line.

``kamlib --version``, ``kamlib demo``, ``kamlib scorecard``, ``kamlib report`` and
``kamlib stream``. Each feature
module listed in :data:`COMMAND_MODULES` registers its own sub-command with ``add_parser``.
Exit codes: 0 success, 2 bad input (usage, :class:`kamlib.SchemaError`, or a missing connector,
:class:`kamlib.errors.ConnectorUnavailableError`: both are fixed by the caller's arguments or
configuration), 1 runtime failure. Errors are printed as one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kamlib._spark import check_pyspark
from kamlib._version import __version__
from kamlib.errors import ConnectorUnavailableError, KamlibError, SchemaError

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_OK", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

log = logging.getLogger("kamlib")


#: Modules that each provide ``add_parser(subparsers)`` for one sub-command.
COMMAND_MODULES: tuple[str, ...] = (
    "kamlib.cli.demo",
    "kamlib.cli.scorecard",
    "kamlib.cli.report",
    "kamlib.cli.stream",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``kamlib`` argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="kamlib",
        description="Key Account Management metrics on Apache Spark.",
    )
    parser.add_argument("--version", action="version", version=f"kamlib {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not exc.name or not name.startswith(exc.name):  # a real error inside a module
                raise
            continue
        module.add_parser(sub)
    return parser


def _one_line(command: str, exc: BaseException) -> str:
    """``exc``'s first line, without a leading ``kamlib <command>:`` (printed anyway).

    kamlib's own messages are one line; a wrapped Spark failure keeps its first line (the
    exception and its message) and drops the JVM stack trace.
    """
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else type(exc).__name__
    prefix = f"kamlib {command}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kamlib`` command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        check_pyspark()  # every sub-command runs Spark; --version and --help do not need it
    except ImportError as exc:
        print(f"kamlib {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        return int(handler(args))
    except (SchemaError, ConnectorUnavailableError) as exc:
        print(f"kamlib {args.command}: bad input: {_one_line(args.command, exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KamlibError as exc:
        print(f"kamlib {args.command}: {_one_line(args.command, exc)}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
