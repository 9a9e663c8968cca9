"""Invalid values derived from a schema: each one breaks the constraint it is said to break."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from bastion.scanner.checks.input import HUGE, invalid_values
from bastion.scanner.runner import FieldSchema, field_schema

BOUND = st.none() | st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False)
SCHEMAS = st.builds(
    FieldSchema,
    kind=st.sampled_from([None, "integer", "number", "string", "boolean", "array", "object"]),
    minimum=BOUND,
    maximum=BOUND,
    min_length=st.none() | st.integers(0, 50),
    max_length=st.none() | st.integers(0, 500),
    enum=st.lists(st.text(max_size=5), max_size=3).map(tuple),
)


@given(SCHEMAS, st.sampled_from(["amount", "limit", "name"]), st.booleans())
def test_every_invalid_value_breaks_the_constraint_it_names(
    schema: FieldSchema, name: str, body: bool
):
    values = invalid_values(schema, name, body=body)
    assert len(values) <= 5
    for value, why in values:
        if why.startswith("below the minimum"):
            assert schema.minimum is not None
            assert isinstance(value, int | float)
            assert value < schema.minimum
        elif why.startswith("above the maximum"):
            assert schema.maximum is not None
            assert isinstance(value, int | float)
            assert value > schema.maximum
        elif why.startswith("longer than"):
            assert schema.max_length is not None
            assert isinstance(value, str)
            assert len(value) > schema.max_length
        elif why.startswith("shorter than"):
            assert schema.min_length is not None
            assert isinstance(value, str)
            assert len(value) < schema.min_length
        elif why == "a value outside the enum":
            assert value not in schema.enum
        elif why == "an integer of 31 digits":
            assert schema.kind == "integer"
            assert value == HUGE
        elif why == "a negative amount":
            assert schema.minimum is None
            assert isinstance(value, int)
            assert value < 0
        else:
            assert why.endswith("belongs"), why


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
            FieldSchema(kind="integer", minimum=1, maximum=100),
        ),
        (
            {"type": "string", "maxLength": 3, "pattern": "^[A-Z]+$", "enum": ["EUR", "USD"]},
            FieldSchema(kind="string", max_length=3, pattern="^[A-Z]+$", enum=("EUR", "USD")),
        ),
        ({"type": "number", "exclusiveMinimum": 0}, FieldSchema(kind="number", minimum=0)),
        ({"maxLength": -1, "minimum": True, "pattern": 7}, FieldSchema()),
        ("not a schema", FieldSchema()),
    ],
    ids=["nullable-integer", "string", "exclusive-minimum", "nonsense-values", "not-a-dict"],
)
def test_field_schema_keeps_the_constraints_probes_break(schema: object, expected: FieldSchema):
    assert field_schema({}, schema) == expected
