"""All 332 expressions of shared/pql_examples.jsonl parse, or are rejected for a written reason."""

import json
from pathlib import Path

import pytest

from audiences.pql import PQLError, parse

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "pql_examples.jsonl"
if not CORPUS.exists():
    CORPUS = Path("/work/shared/pql_examples.jsonl")
ROWS = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]

# Expression index -> why Sift rejects it (pql.md §14 A15: malformed or not segmentation PQL).
REJECTED = {
    82: "unclosed quote in the streaming guide: inSegment(\"7deb246a-…) and …",
    139: "documentation placeholder _{TENANT_ID}",
    141: "documentation placeholder _{TENANT_ID}",
    143: "truncated sample: xEvent[(… >= 10.0) is never closed",
    153: "typographic quote “CA\" in the legacy spec",
    156: "typographic quote “CA\" in the legacy spec",
    157: "typographic quote “CA\" in the legacy spec",
    314: "Journey Optimizer context reference @{…}",
    321: "Journey Optimizer context reference @{…}",
    322: "Journey Optimizer placeholder xEvent.<OrgID>",
    323: "Journey Optimizer context reference @{…}",
    324: "Journey Optimizer placeholder xEvent.<OrgID>",
    325: "Journey Optimizer context reference @{…}",
    326: "Journey Optimizer placeholder xEvent.<OrgID>",
    327: "Journey Optimizer context reference @{…}",
    328: "Journey Optimizer placeholder xEvent.<OrgID>",
}


def test_the_corpus_has_332_expressions():
    assert len(ROWS) == 332


@pytest.mark.parametrize("index", range(len(ROWS)))
def test_corpus_expression_parses_round_trips_or_is_rejected_for_a_reason(index):
    text = ROWS[index]["pql"]
    if index in REJECTED:
        with pytest.raises(PQLError) as caught:
            parse(text)
        assert caught.value.line >= 1 and caught.value.column >= 1
        return
    query = parse(text)
    assert parse(query.to_pql()) == query
    # And it evaluates on an empty profile without raising.
    from datetime import UTC, datetime

    query.evaluate_strict({}, [], now=datetime(2026, 1, 1, tzinfo=UTC))


# Rows whose streaming flag describes a segment definition under a known ruleset. The other
# flagged rows are computed attributes (a different evaluation mode) or the inSegment + event
# contradiction of pql.md §14 A1 (rows 75/81), decided in audiences/eligibility.py.
STREAMING_FLAGS = {
    76: ("2025-05-20", True), 77: ("2025-05-20", True), 78: ("2025-05-20", True),
    79: ("2025-05-20", True), 80: ("2025-05-20", True),
    # Listed in old API responses as streaming: single events needed no window then.
    84: ("legacy", True), 85: ("legacy", True),
}


@pytest.mark.parametrize("index", sorted(STREAMING_FLAGS))
def test_documented_streaming_flags_agree_with_classify(index):
    from audiences.eligibility import classify

    ruleset, expected = STREAMING_FLAGS[index]
    verdict = classify(parse(ROWS[index]["pql"]), {}, ruleset=ruleset)
    assert verdict.streaming is expected, verdict.reasons["streaming"]
