"""docs/api documents exactly the public surface: every exported name, and only exported names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"
#: The packages and modules users import from (their ``__all__`` is the public surface).
PUBLIC = (
    "kamlib",
    "kamlib.errors",
    "kamlib.classify",
    "kamlib.wallet",
    "kamlib.nps",
    "kamlib.retention",
    "kamlib.profitability",
    "kamlib.recurring",
    "kamlib.hierarchy",
    "kamlib.growth",
    "kamlib.health",
    "kamlib.churn",
    "kamlib.churn_model",
    "kamlib.connectors",
    "kamlib.scorecard",
    "kamlib.clv",
    "kamlib.streaming",
    "kamlib.report",
    "kamlib.datasets",
    "kamlib.testing",
    "kamlib.testing.strategies",
    "kamlib.demo",
)
DIRECTIVE = re.compile(r"^\.\. automodule:: (\S+)\n((?:   :[^\n]*\n(?:     [^\n]*\n)*)*)", re.M)


def _documented() -> dict[str, list[str]]:
    """``{module: [member, ...]}`` from every ``automodule`` directive in docs/api."""
    out: dict[str, list[str]] = {}
    for page in sorted(DOCS.glob("*.rst")):
        for match in DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            module, options = match.group(1), match.group(2)
            listed = re.search(r":members:(.*?)(?=\n   :|\Z)", options, re.S)
            names = [n.strip() for n in (listed.group(1) if listed else "").split(",")]
            names = [n for n in names if n]
            if not names:  # ":members:" alone documents the module's __all__
                names = list(importlib.import_module(module).__all__)
            out.setdefault(module, []).extend(names)
    return out


def _public_objects() -> dict[str, list[int]]:
    pytest.importorskip("pyspark")
    exported: dict[str, list[int]] = {}
    for name in PUBLIC:
        module = importlib.import_module(name)
        for attr in module.__all__:
            exported.setdefault(attr, []).append(id(getattr(module, attr)))
    return exported


def _exempt(name: str, obj: object) -> bool:
    """Dunders and typing aliases (``Literal`` choices, ``Callable`` types): named in the
    signatures and prose of the functions that take them, not autodoc entries."""
    return name.startswith("__") or type(obj).__module__ in {"typing", "types", "collections.abc"}


def test_every_exported_name_is_documented() -> None:
    documented = {
        id(getattr(importlib.import_module(module), name))
        for module, names in _documented().items()
        for name in names
    }
    missing = sorted(
        f"{pkg}.{attr}"
        for pkg in PUBLIC
        for attr in importlib.import_module(pkg).__all__
        if id(getattr(importlib.import_module(pkg), attr)) not in documented
        and not _exempt(attr, getattr(importlib.import_module(pkg), attr))
    )
    assert missing == [], f"exported but not in docs/api: {missing}"


def test_every_documented_name_is_exported() -> None:
    exported = _public_objects()
    extra = sorted(
        f"{module}.{name}"
        for module, names in _documented().items()
        for name in names
        if id(getattr(importlib.import_module(module), name)) not in exported.get(name, [])
    )
    assert extra == [], f"documented but not exported by a public package: {extra}"
