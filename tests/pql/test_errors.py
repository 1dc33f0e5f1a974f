"""Errors a marketer can act on: where, what was expected, and the nearest name."""

import pytest

from audiences.pql import PQLError, parse


def error(text) -> PQLError:
    with pytest.raises(PQLError) as caught:
        parse(text)
    return caught.value


def test_an_unclosed_string_points_at_its_start():
    e = error('homeAddress.countryISO = "US')
    assert (e.line, e.column) == (1, 26)
    assert "never closed" in e.message


def test_the_caret_excerpt_marks_the_column_on_the_right_line():
    e = error('homeAddress.countryISO = "US"\nand person.age >')
    assert e.line == 2
    assert e.excerpt.splitlines() == ["and person.age >", "                ^"]
    assert "line 2" in str(e)


def test_unknown_methods_suggest_the_nearest_name():
    e = error('person.name.startWith("Jo")')
    assert "Unknown method 'startWith'" in e.message
    assert "startsWith" in e.hint


def test_unknown_functions_suggest_or_list():
    assert "inSegment" in error('inSegmnt("x")').hint


def test_wrong_arity_is_explained():
    assert "takes 3 argument(s)" in error("date(2020, 1)").message


def test_a_missing_closing_parenthesis_says_what_was_expected():
    e = error('(homeAddress.countryISO = "US"')
    assert "Expected ')'" in e.message


def test_typographic_quotes_and_placeholders_are_refused_with_a_hint():
    assert "straight double quotes" in error('state = “CA"').message
    assert "placeholder" in error("_{TENANT_ID}.points > 3").message


def test_more_than_six_chain_steps_is_an_error():
    steps = ", ".join(f'C{i}: WHAT(eventType = "e{i}")' for i in range(7))
    e = error(f"CHAIN(xEvent, timestamp, [{steps}])")
    assert "at most 6" in e.message


def test_a_time_clause_needs_a_unit_and_a_direction():
    assert "time unit" in error("x occurs <= 3 before now").message
    assert "'before'" in error("x occurs <= 3 days now").message


def test_keywords_are_case_insensitive_but_fields_are_not():
    assert parse('a = 1 AND b = 2 OR NOT c = 3') == parse("a = 1 and b = 2 or not c = 3")
    assert parse("State = 1") != parse("state = 1")


@pytest.mark.parametrize("text", ["", "   ", "=", "a ==", "[1, 2", "{1: 2}", "a.b(", "x occurs",
                                  "$", "select X from", "CHAIN(xEvent)", "let x = 1"])
def test_bad_input_raises_only_pql_error(text):
    e = error(text)
    assert e.line >= 1 and e.column >= 1
