"""SchemaError carries structured fields (function, argument, column, expected, found)."""

from __future__ import annotations

import pytest

from kamlib import SchemaError
from kamlib._validation import (
    check_choice,
    check_fraction,
    check_group_keys,
    check_int,
    check_name,
    check_output_collisions,
    check_positive,
    check_unique_columns,
    parse_timestamp,
    quote,
    require_columns,
)


def _fields(exc: SchemaError) -> tuple[object, ...]:
    return (exc.function, exc.argument, exc.column, exc.expected, exc.found)


def test_message_is_built_from_fields():
    exc = SchemaError(function="f", argument="x", expected="> 0", found="-1")
    assert str(exc) == "f(): x= must be > 0, found -1"
    exc = SchemaError(function="f", argument="value_col", column="v", expected="numeric")
    assert str(exc) == "f(): column 'v' (argument value_col=) must be numeric"
    assert _fields(SchemaError("plain")) == (None, None, None, None, None)
    assert str(SchemaError("plain")) == "plain"


@pytest.mark.parametrize(
    ("call", "fields"),
    [
        (lambda: check_positive("f", "x", -1), ("f", "x", None, "> 0", "-1")),
        (lambda: check_positive("f", "x", "a"), ("f", "x", None, "a number", "'a'")),
        (lambda: check_fraction("f", "q", 2), ("f", "q", None, "in (0.0, 1.0]", "2")),
        (lambda: check_choice("f", "p", "z", ("a",)), ("f", "p", None, "one of 'a'", "'z'")),
        (lambda: check_int("f", "n", 0), ("f", "n", None, "an integer >= 1", "0")),
        (lambda: check_int("f", "n", True), ("f", "n", None, "an integer >= 1", "True")),
        (
            lambda: check_int("f", "d", 0, unit="days"),
            ("f", "d", None, "a positive int (days)", "0"),
        ),
        (lambda: check_int("f", "k", 1, low=2), ("f", "k", None, "an integer >= 2", "1")),
        (lambda: check_name("f", "c", ""), ("f", "c", None, "a column name (non-empty str)", "''")),
        (lambda: check_name("f", "c", 3), ("f", "c", None, "a column name (non-empty str)", "int")),
        (
            lambda: parse_timestamp("f", "as_of", "soon"),
            ("f", "as_of", None, "a date, a datetime or an ISO 8601 string", "'soon'"),
        ),
        (
            lambda: check_output_collisions("f", {"Value": "account_col"}, ["value"]),
            ("f", "account_col", "Value", "a name that is not an output column", "'Value'"),
        ),
    ],
)
def test_option_checks_fill_the_fields(call, fields):
    with pytest.raises(SchemaError) as info:
        call()
    assert _fields(info.value) == fields
    assert str(info.value).startswith(f"{fields[0]}(): ")


def test_messages_stay_compatible():
    with pytest.raises(SchemaError, match=r"f\(\): x= must be > 0, found -1"):
        check_positive("f", "x", -1)
    with pytest.raises(SchemaError, match="n_days= must be a positive int"):
        check_int("f", "n_days", -3, unit="days")
    with pytest.raises(SchemaError, match="clashes with an output column"):
        check_output_collisions("f", {"period": "by"}, ["period"])


def test_quote_escapes_backticks():
    assert quote("a.b") == "`a.b`"
    assert quote("we`ird") == "`we``ird`"


def test_column_checks_fill_the_fields(spark):
    df = spark.createDataFrame([("a", "x", 1.0)], "account_id string, region string, amount double")
    with pytest.raises(SchemaError, match="Did you mean 'amount'") as info:
        require_columns(df, "g", value_col=("amuont", "numeric"))
    assert _fields(info.value) == (
        "g",
        "value_col",
        "amuont",
        "an existing column",
        "no such column",
    )
    with pytest.raises(SchemaError) as info:
        require_columns(df, "g", value_col=("region", "numeric"))
    assert _fields(info.value) == ("g", "value_col", "region", "numeric", "string")
    with pytest.raises(SchemaError) as info:
        check_group_keys(df, "g", ["account_id"], account_col="account_id")
    assert (info.value.argument, info.value.column) == ("by", "account_id")
    with pytest.raises(SchemaError) as info:
        check_group_keys(df, "g", ["region", "region"], account_col="account_id")
    assert info.value.expected == "distinct columns"
    dup = spark.createDataFrame([(1, 2)], "a int, b int").toDF("a", "A")
    with pytest.raises(SchemaError) as info:
        check_unique_columns(dup, "g")
    assert (info.value.column, info.value.expected) == ("A", "unique column names")
