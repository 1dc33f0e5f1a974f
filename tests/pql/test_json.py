from audiences.pql import PQLError, from_json, parse


def test_the_documented_conversion_example():
    assert parse('workAddress.country = "US"').to_json() == {
        "nodeType": "fnApply", "fnName": "=",
        "params": [
            {"nodeType": "fieldLookup", "fieldName": "country",
             "object": {"nodeType": "fieldLookup", "fieldName": "workAddress",
                        "object": {"nodeType": "parameterReference", "position": 1}}},
            {"nodeType": "literal", "literalType": "String", "value": "US"},
        ]}


def test_every_construct_converts_both_ways():
    text = ('inSegment("a") and CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "x") '
            'WHEN(<= 2 hours before now) COUNT(2), C1: !WHAT(eventType = "y")]) and '
            '(select X from xEvent where X.timestamp occurs last week) and '
            'orders.topN(price, 2).head().price > 3 and let S = (sum X.v over X from xEvent) '
            'in S > 1 and $1.a.b in [1, 2.5, "c", true]')
    query = parse(text)
    assert from_json(query.to_json()) == query


def test_a_bad_tree_is_a_pql_error():
    try:
        from_json({"nodeType": "mystery"})
    except PQLError as error:
        assert "mystery" in error.message
    else:
        raise AssertionError("expected PQLError")
