"""Which evaluation methods a PQL definition may use, and why. No Django here.

    classify(query, referenced=None, ruleset=CURRENT) -> Eligibility

Batch evaluates everything. Streaming and edge follow Adobe's rules (aep-reference.md Part A
§4.2-4.4), in two rulesets:

- `CURRENT` ("2025-05-20"), for new and edited definitions: profile-only; one event inside a
  window of at most 24 hours, with or without profile attributes; several events within 24
  hours in one CHAIN (strict order), at least one of them not negated; segment of segments.
  Not eligible: an event with no window or a wider one; independent event conditions;
  aggregations; Audience Manager segments or traits; the whole event condition negated.
- `LEGACY` (before 20 May 2025), kept for definitions judged by it until they are edited:
  single events needed no window.

Decisions where Adobe's pages disagree (pql.md §14 A1, aep-reference §7 item 1):
- `inSegment` + an event stays streaming when every referenced audience is profile-only, is
  itself streaming or edge, or is a batch audience on profile data (the May 2025 pattern);
  a reference to a batch *event* audience, or to an unknown one, sends it to batch. Edge is
  stricter: every referenced audience must be profile-only.
- `today` counts as a window of 24 hours or less (it is a calendar day).
- `COUNT(n)` inside 24 hours stays eligible (Adobe's edge list named frequency queries).
- Edge does not take sequences of several events (aep-reference Part A §4.3).

For every method that is not eligible, `suggestions` says the smallest change that would make
it so — what Adobe's portal does not tell you.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

CURRENT = "2025-05-20"
LEGACY = "legacy"
RULESETS = (CURRENT, LEGACY)
DAY = timedelta(hours=24)
AAM_NAMESPACES = {"aamsegments", "aamtraits", "aam"}
PROFILE_SCHEMA = "_xdm.context.profile"


@dataclass(frozen=True)
class ReferencedFacts:
    """What classification needs to know about an audience named by `inSegment`."""

    profile_only: bool
    batch: bool = True
    streaming: bool = False
    edge: bool = False
    schema: str = PROFILE_SCHEMA


@dataclass(frozen=True)
class Eligibility:
    batch: bool
    streaming: bool
    edge: bool
    reasons: dict[str, list[str]]
    suggestions: dict[str, list[str]] = field(default_factory=dict)
    query_type: str = "profile_only"
    ruleset: str = CURRENT

    def allows(self, method: str) -> bool:
        return {"batch": self.batch, "streaming": self.streaming, "edge": self.edge}[method]

    def to_dict(self) -> dict:
        return {"batch": self.batch, "streaming": self.streaming, "edge": self.edge,
                "queryType": self.query_type, "ruleset": self.ruleset,
                "reasons": self.reasons, "suggestions": self.suggestions}


QUERY_TYPE_LABELS = {
    "profile_only": "Profile only",
    "single_event": "Single event",
    "single_event_with_profile": "Single event with profile attributes",
    "multiple_events": "Multiple events in sequence",
    "segment_of_segments": "Segment of segments",
    "segment_of_segments_with_event": "Segment of segments with an event",
    "independent_events": "Independent event conditions",
    "aggregation": "Aggregation over events",
    "negated_events": "Negated events only",
}


def _facts(value: Any) -> ReferencedFacts | None:
    if value is None:
        return None
    if isinstance(value, ReferencedFacts):
        return value
    get = value.get if isinstance(value, Mapping) else lambda k, d=None: getattr(value, k, d)
    return ReferencedFacts(profile_only=bool(get("profile_only", False)),
                           batch=bool(get("batch", True)), streaming=bool(get("streaming", False)),
                           edge=bool(get("edge", False)),
                           schema=str(get("schema", PROFILE_SCHEMA) or PROFILE_SCHEMA))


def _hours(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)} days"
    return f"{hours:g} hours"


def classify(query, referenced: Mapping[str, Any] | None = None, ruleset: str = CURRENT
             ) -> Eligibility:
    if ruleset not in RULESETS:
        raise ValueError(f"unknown ruleset {ruleset!r}; use one of {RULESETS}")
    refs = query.references
    referenced = referenced or {}
    accesses = list(refs.accesses)
    positive = [a for a in accesses if not a.negated]
    has_profile = bool(refs.profile_paths)
    segments = sorted(refs.segment_ids)
    streaming_no: list[str] = []
    edge_no: list[str] = []
    suggest_streaming: list[str] = []
    suggest_edge: list[str] = []
    why_yes: list[str] = []

    # --- what kind of query is it -------------------------------------------------------
    chains = {a.chain_id for a in positive if a.chain_id is not None}
    non_chain = [a for a in positive if a.chain_id is None]
    aggregates = [a for a in accesses if a.kind == "aggregate"]
    if not accesses:
        query_type = "segment_of_segments" if segments and not has_profile else (
            "profile_only" if not segments else "segment_of_segments")
    elif aggregates:
        query_type = "aggregation"
    elif not positive:
        query_type = "negated_events"
    elif len(chains) + len(non_chain) > 1:
        query_type = "independent_events"
    elif len(positive) > 1:
        query_type = "multiple_events"
    elif segments:
        query_type = "segment_of_segments_with_event"
    else:
        query_type = "single_event_with_profile" if has_profile else "single_event"

    # --- rules shared by streaming and edge -----------------------------------------------
    aam = sorted(ns for ns in refs.segment_namespaces if ns.lower() in AAM_NAMESPACES)
    if aam:
        text = f"It uses Audience Manager data ({', '.join(aam)}), which is evaluated in batch."
        streaming_no.append(text)
        edge_no.append(text)
        suggest_streaming.append("Rebuild the Audience Manager part as a Sift audience.")
    if not accesses:
        if segments and not has_profile:
            why_yes.append("Segment of segments: it only combines other audiences' "
                           "memberships, so it can follow them as they change.")
        elif segments:
            why_yes.append("Profile attributes and audience memberships only: re-evaluated "
                           "whenever either changes.")
        else:
            why_yes.append("Profile attributes only: re-evaluated whenever the profile "
                           "changes.")
    else:
        if aggregates:
            text = ("It aggregates over events (count, sum, average, min or max); "
                    "aggregations are evaluated in batch.")
            streaming_no.append(text)
            edge_no.append(text)
            suggest_streaming.append("Replace the aggregation with a CHAIN step that has "
                                     "COUNT(n) and WHEN(<= 24 hours before now).")
        if not positive:
            text = ("The whole event condition is negated; at least one event must be one "
                    "that happened.")
            streaming_no.append(text)
            edge_no.append(text)
            suggest_streaming.append("Add an event that must happen, and keep the negated "
                                     "event as a step of the same CHAIN.")
        if len(chains) + len(non_chain) > 1:
            text = ("It has several independent event conditions; events must form one "
                    "sequence (CHAIN) with a strict order.")
            if ruleset == CURRENT or len(chains) > 1 or non_chain:
                streaming_no.append(text)
            suggest_streaming.append("Put the events in one CHAIN with a strict order, or make "
                                     "each its own audience and combine them with inSegment.")
            if ruleset == CURRENT:
                edge_no.append(text)
        # Windows.
        single = len(positive) == 1 and not aggregates
        for access in accesses:
            if access.kind == "aggregate" or (access.kind == "step" and access.negated
                                              and access.chain_id in chains):
                # A negated step is bounded by the steps around it.
                continue
            label = f'"{access.window_text}"' if access.window_text else ""
            if access.window is None:
                if ruleset == LEGACY and single:
                    continue
                what = "an event with no time window" if not access.window_text else (
                    f"the window {label}, which is not relative to now")
                text = (f"It uses {what}; streaming needs every event inside 24 hours "
                        "→ batch only.")
                streaming_no.append(text)
                edge_no.append(text)
                suggest_streaming.append("Add a window of 24 hours or less, for example "
                                         "WHEN(<= 24 hours before now).")
            elif access.window > DAY:
                if ruleset == LEGACY and single:
                    continue
                text = (f"The window {label} reaches back {_hours(access.window)}, "
                        "more than 24 hours → batch only.")
                streaming_no.append(text)
                edge_no.append(text)
                suggest_streaming.append(f"Narrow {label} to 24 hours or less, for example "
                                         "WHEN(<= 24 hours before now).")
        # Edge takes single events only (sequences are not supported there).
        if len(positive) > 1 and ruleset == CURRENT:
            edge_no.append("Edge evaluates single events; sequences of several events are not "
                           "supported on edge.")
            suggest_edge.append("Keep one event (with profile attributes if needed) for edge, "
                                "or use streaming for the sequence.")
        # inSegment together with events.
        for segment_id in segments:
            facts = _facts(referenced.get(segment_id))
            if facts is None:
                text = (f'inSegment("{segment_id}") names an audience Sift does not know, so '
                        "its data source cannot be checked.")
                streaming_no.append(text)
                edge_no.append(text)
                continue
            # A batch audience on profile data is profile-only: the May 2025 pattern.
            ok_streaming = facts.profile_only or (
                ruleset == CURRENT and (facts.streaming or facts.edge))
            if not ok_streaming:
                text = (f'It combines an event with inSegment("{segment_id}"), a batch audience '
                        "built on events; mixing batch and streaming event sources → batch only.")
                streaming_no.append(text)
                suggest_streaming.append(f'Make audience {segment_id} streaming, or reference a '
                                         "batch audience built on profile attributes only.")
            if not facts.profile_only:
                edge_no.append(f'Edge combines an event with inSegment only when the referenced '
                               f'audience is profile-only; "{segment_id}" is not.')
                suggest_edge.append(f"Reference a profile-only audience instead of {segment_id}.")
        if not streaming_no:
            kind = QUERY_TYPE_LABELS.get(query_type, query_type).lower()
            why_yes.append(f"{kind[:1].upper()}{kind[1:]} inside 24 hours: evaluated as each "
                           "event arrives, and exited when the window lapses.")

    streaming_ok = not streaming_no
    edge_ok = not edge_no
    reasons = {
        "batch": ["Every query can be evaluated in batch."],
        "streaming": why_yes if streaming_ok else _unique(streaming_no),
        "edge": (why_yes if edge_ok else _unique(edge_no)),
    }
    suggestions = {}
    if not streaming_ok:
        suggestions["streaming"] = _unique(suggest_streaming) or [
            "Simplify the definition to one of the streaming query types."]
    if not edge_ok:
        suggestions["edge"] = _unique(suggest_edge + suggest_streaming) or [
            "Simplify the definition to a single event or profile attributes."]
    return Eligibility(batch=True, streaming=streaming_ok, edge=edge_ok, reasons=reasons,
                       suggestions=suggestions, query_type=query_type, ruleset=ruleset)


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
