"""Untrusted model JSON: every malformed document is one ModelFormatError naming the field."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kamlib.clv import BetaGeo, GammaGamma, ParetoNBD, ShiftedBetaGeo, load_model, model_from_json
from kamlib.clv._base import MAX_DEPTH, MAX_DOCUMENT_CHARS
from kamlib.errors import KamlibError, ModelFormatError

GOOD = {
    BetaGeo: {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43},
    ParetoNBD: {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7},
    GammaGamma: {"p": 6.25, "q": 3.74, "v": 15.4},
    ShiftedBetaGeo: {"alpha": 0.7, "beta": 1.2},
}


def _doc(cls, **params):
    model = cls()
    model._set_fitted(GOOD[cls])
    doc = model.to_dict()
    doc["params"].update(params)
    return doc


@pytest.mark.parametrize("cls", list(GOOD))
def test_valid_documents_round_trip(cls):
    model = model_from_json(json.dumps(_doc(cls)))
    assert isinstance(model, cls)
    assert model.params == GOOD[cls]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (-1, "> 0"),
        (0, "> 0"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (True, "expected a number"),
        ("0.5", "expected a number"),
        (None, "expected a number"),
        ([1.0], "expected a number"),
    ],
)
def test_bad_parameter_values_name_the_field(value, problem):
    with pytest.raises(ModelFormatError, match=problem) as info:
        model_from_json(json.dumps(_doc(BetaGeo, r=value)))
    assert info.value.path == "params.r"


def test_overflowing_literal_and_gamma_gamma_domain():
    text = json.dumps(_doc(BetaGeo)).replace('"r": 0.24', '"r": 1e999')
    with pytest.raises(ModelFormatError, match="finite") as info:
        model_from_json(text)
    assert info.value.path == "params.r"
    with pytest.raises(ModelFormatError, match="> 0") as info:
        model_from_json(json.dumps(_doc(GammaGamma, q=0.0)))
    assert info.value.path == "params.q"
    # q <= 1 is a valid (heavy-tailed) fit: the population mean spend does not exist, so an
    # account without repeat purchases has no expected spend; frequent accounts still do.
    for q in (1.0, 0.5):
        model = model_from_json(json.dumps(_doc(GammaGamma, q=q)))
        p, v = model.params["p"], model.params["v"]
        spend = model.expected_spend_np([0.0, 2.0], [0.0, 30.0])
        assert math.isnan(spend[0])
        assert spend[1] == pytest.approx(p * (v + 2 * 30.0) / (2 * p + q - 1))


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.pop("params"), "params"),
        (lambda d: d["params"].pop("r"), "params"),
        (lambda d: d["params"].update(extra=1.0), "params"),
        (lambda d: d.update(params=[1, 2, 3, 4]), "params"),
        (lambda d: d.update(settings=[]), "settings"),
        (lambda d: d.update(settings={"no_such_option": 1}), "settings"),
        (lambda d: d.update(fit="x"), "fit"),
        (lambda d: d.update(kamlib_version=1), "kamlib_version"),
    ],
)
def test_bad_structure_names_the_field(mutate, path):
    doc = _doc(BetaGeo)
    mutate(doc)
    with pytest.raises(ModelFormatError) as info:
        model_from_json(json.dumps(doc))
    assert info.value.path == path
    assert path in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '"a string"',
        "[" * 100_000 + "]" * 100_000,
        '{"kamlib_model": "BetaGeo", "fit": {"x": ' + "[" * 40 + "]" * 40 + "}}",
        " " * (MAX_DOCUMENT_CHARS + 1),
    ],
    ids=["truncated", "array", "string", "deep", "deep-fit", "huge"],
)
def test_malformed_documents_are_one_error(text):
    with pytest.raises(ModelFormatError) as info:
        model_from_json(text)
    assert info.value.path == "$"


def test_format_version_must_be_an_int_and_errors_are_kamlib_errors():
    doc = _doc(BetaGeo)
    doc["format_version"] = True
    with pytest.raises(KamlibError, match="format_version"):
        model_from_json(json.dumps(doc))
    assert issubclass(ModelFormatError, KamlibError)
    assert issubclass(ModelFormatError, ValueError)
    assert MAX_DEPTH >= 4


def test_binary_and_non_utf8_files(tmp_path):
    path = tmp_path / "model.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(ModelFormatError, match="not UTF-8") as info:
        load_model(path)
    assert info.value.path == "$"
    path.write_bytes(b"\x00\x01 not json")
    with pytest.raises(ModelFormatError):
        BetaGeo.load(path)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(params=st.dictionaries(st.sampled_from(["r", "alpha", "a", "b", "x"]), _json, max_size=5))
def test_any_params_object_loads_validly_or_raises_model_format_error(params):
    doc = _doc(BetaGeo)
    doc["params"] = params
    try:
        model = model_from_json(json.dumps(doc))
    except ModelFormatError:
        return
    assert all(math.isfinite(v) and v > 0 for v in model.params.values())
