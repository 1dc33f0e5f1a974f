"""Segment definitions: the only write path (API now, portal later) and the live validator.

Every create and edit goes through the same steps:

1. Parse the PQL (`pql/text`, or a `pql/json` tree turned into text). A bad expression is a
   `PQL_SYNTAX` error that names the line, column, what was expected and a caret line.
2. Resolve `inSegment` targets: they must exist in this sandbox and not be inactive; a reference
   that would close a cycle is refused naming the cycle.
3. Classify the query (`audiences.eligibility.classify`, the current ruleset) and decide what is
   saved: a requested streaming or edge method is kept only when the rules allow it AND the
   definition is on the sandbox's active-on-edge merge policy. Otherwise the definition is saved
   as batch and `eligibility["refused"]` says why, per method: never a silent switch.
4. Write the row, its dependencies and one `DefinitionHistory` row in one transaction.

Edits that leave the rules alone (name, description, labels, tags, TTL, lifecycle) keep the
verdict and the ruleset that produced it, so a definition judged by an older ruleset keeps its
method until its expression, merge policy or requested methods change. An edit that does not
say which methods it wants asks for the methods in force, so a definition that fell back to batch
stays batch until the author asks for streaming again (Adobe's one-way rule).

`definition_validate` runs steps 1–3 without writing anything: the Segment Builder calls it on
every keystroke.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from audiences.eligibility import CURRENT, ReferencedFacts, classify
from audiences.models import DefinitionHistory, MergePolicy, SegmentDefinition, Tag
from audiences.pql import PQLError, parse
from audiences.services.destinations import activation_blockers
from portal.errors import ErrorCode, SiftError
from portal.models import Sandbox
from portal.scope import current_sandbox

Lifecycle = SegmentDefinition.Lifecycle
Origin = SegmentDefinition.Origin

METHODS = ("batch", "streaming", "edge")
EXPRESSION_FORMATS = ("pql/text", "pql/json")
DEFAULT_TTL_IN_DAYS = 30
# Fields whose change re-judges eligibility under the current ruleset.
RULE_FIELDS = frozenset({"expression", "expression_format", "merge_policy", "requested"})
EDITABLE_FIELDS = RULE_FIELDS | frozenset({
    "name", "description", "ttl_in_days", "lifecycle_state", "labels", "tags", "audience_id",
    "namespace", "external_meta",
})
# Lifecycle states that make a definition unusable inside another one (Adobe FAQ table).
UNUSABLE_STATES = frozenset({Lifecycle.INACTIVE, Lifecycle.ARCHIVED})
# Publish/deactivate transitions (faq.md "Lifecycle states"); archived means deleted.
TRANSITIONS = {
    Lifecycle.DRAFT: {Lifecycle.DRAFT, Lifecycle.PUBLISHED, Lifecycle.INACTIVE},
    Lifecycle.PUBLISHED: {Lifecycle.PUBLISHED, Lifecycle.INACTIVE},
    Lifecycle.INACTIVE: {Lifecycle.INACTIVE, Lifecycle.PUBLISHED},
    Lifecycle.ARCHIVED: {Lifecycle.ARCHIVED},
}

MERGE_POLICY_REASON = (
    "{method} evaluation needs the sandbox's active-on-edge merge policy{edge}; this definition "
    "uses {policy!r}."
)


# --- The verdict ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParseProblem:
    """Where and why the PQL could not be read."""

    message: str
    line: int
    column: int
    hint: str = ""
    source_line: str = ""

    @property
    def caret(self) -> str:
        """The offending line with a `^` under the column (1-based)."""
        pointer = " " * max(self.column - 1, 0) + "^"
        return f"{self.source_line}\n{pointer}" if self.source_line else pointer

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "line": self.line, "column": self.column,
                "hint": self.hint, "caret": self.caret}


@dataclass(frozen=True)
class Problem:
    """A reason the definition cannot be saved other than syntax (references, cycles)."""

    code: ErrorCode
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, **self.details}


@dataclass(frozen=True)
class Verdict:
    """What `definition_validate` found: an error, or what would be saved and why."""

    expression: str = ""
    syntax_error: ParseProblem | None = None
    problems: tuple[Problem, ...] = ()
    query: Any = None
    query_type: str = ""
    ruleset: str = ""
    eligible: Mapping[str, bool] = field(default_factory=dict)
    reasons: Mapping[str, list[str]] = field(default_factory=dict)
    suggestions: Mapping[str, list[str]] = field(default_factory=dict)
    requested: Mapping[str, bool] = field(default_factory=dict)
    saved: Mapping[str, bool] = field(default_factory=dict)
    refused: Mapping[str, list[str]] = field(default_factory=dict)
    references: Mapping[str, Any] = field(default_factory=dict)
    dependency_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.syntax_error is None and not self.problems

    def raise_for_problems(self) -> None:
        """Raise the first problem as the `SiftError` the API renders."""
        if self.syntax_error is not None:
            error = self.syntax_error
            raise SiftError(
                ErrorCode.PQL_SYNTAX,
                f"Invalid PQL at line {error.line}, column {error.column}: {error.message}",
                error.to_dict(), status=400)
        if self.problems:
            problem = self.problems[0]
            raise SiftError(problem.code, problem.message, problem.details)

    def eligibility_json(self) -> dict[str, Any]:
        """What is stored in `SegmentDefinition.eligibility` and shown as `sift:eligibility`."""
        return {
            "batch": bool(self.eligible.get("batch", True)),
            "streaming": bool(self.eligible.get("streaming")),
            "edge": bool(self.eligible.get("edge")),
            "queryType": self.query_type,
            "ruleset": self.ruleset,
            "reasons": {m: list(r) for m, r in self.reasons.items() if r},
            "suggestions": {m: list(s) for m, s in self.suggestions.items() if s},
            "requested": dict(self.requested),
            "refused": {m: list(r) for m, r in self.refused.items() if r},
        }

    def to_dict(self) -> dict[str, Any]:
        """The live-validation answer the portal renders (and tests read)."""
        return {
            "ok": self.ok,
            "expression": self.expression,
            "error": self.syntax_error.to_dict() if self.syntax_error else None,
            "problems": [p.to_dict() for p in self.problems],
            "eligibility": self.eligibility_json() if self.query is not None else None,
            "saved": dict(self.saved),
            "references": dict(self.references),
            "dependencies": list(self.dependency_ids),
        }


# --- Reading the expression ---------------------------------------------------------------------


def _source_line(text: str, line: int) -> str:
    lines = text.splitlines() or [""]
    return lines[line - 1] if 1 <= line <= len(lines) else ""


def _problem_from(error: PQLError, text: str) -> ParseProblem:
    return ParseProblem(message=error.message, line=error.line, column=error.column,
                        hint=error.hint or "", source_line=_source_line(text, error.line))


def expression_parse(*, expression: str, expression_format: str = "pql/text"
                     ) -> tuple[Any, str]:
    """Parse `expression` in either format; returns (query, the PQL text to store).

    Raises `PQLError` for bad PQL and `SiftError(UNSUPPORTED_EXPRESSION)` for a bad format.
    """
    if expression_format == "pql/text":
        return parse(expression), expression
    if expression_format == "pql/json":
        from audiences.pql import from_json

        try:
            tree = json.loads(expression) if isinstance(expression, str) else expression
        except ValueError as exc:
            raise SiftError(ErrorCode.UNSUPPORTED_EXPRESSION,
                            f"expression.value is not a JSON document: {exc}") from None
        query = from_json(tree)
        return query, query.to_pql()
    raise SiftError(ErrorCode.UNSUPPORTED_EXPRESSION,
                    f"expression.format must be one of {', '.join(EXPRESSION_FORMATS)}; "
                    f"got {expression_format!r}.")


def expression_convert(*, expression: str, expression_format: str) -> tuple[str, str]:
    """`pql/text` <-> `pql/json`; returns (the other format, the converted value)."""
    try:
        query, _text = expression_parse(expression=expression,
                                        expression_format=expression_format)
    except PQLError as exc:
        _verdict_from_parse_error(exc, expression).raise_for_problems()
        raise  # unreachable: raise_for_problems always raises for a syntax error
    if expression_format == "pql/text":
        return "pql/json", json.dumps(query.to_json(), separators=(",", ":"))
    return "pql/text", query.to_pql()


def _unquoted_in_segment(query: Any, text: str) -> ParseProblem | None:
    """`inSegment` must name an audience id in quotes: the engine accepts any expression there
    (and then records no reference), but a definition's dependencies must be checkable."""
    from audiences.pql import ast

    for node in ast.walk(query.tree):
        if isinstance(node, ast.Call) and node.obj is None and node.name == "inSegment" and not (
                node.args and isinstance(node.args[0], ast.Literal)
                and isinstance(node.args[0].value, str)):
            match = re.search(r"inSegment\s*\(\s*(?![\"'])", text, re.IGNORECASE)
            offset = match.end() if match else 0
            line = text.count("\n", 0, offset) + 1
            column = offset - (text.rfind("\n", 0, offset) + 1) + 1
            return ParseProblem(
                message="inSegment needs an audience id in quotes",
                line=line, column=column, source_line=_source_line(text, line),
                hint='Write inSegment("<audience id>") with the id of an audience of this '
                     "sandbox.")
    return None


def _verdict_from_parse_error(error: PQLError, text: str) -> Verdict:
    return Verdict(expression=text if isinstance(text, str) else "",
                   syntax_error=_problem_from(error, text if isinstance(text, str) else ""))


# --- Eligibility --------------------------------------------------------------------------------


def _references_json(query: Any) -> dict[str, Any]:
    """The engine's references as JSON (profilePaths, eventTypes (lower-cased; None = any),
    eventPaths, segmentIds, usesEvents, usesNow, lookbackSeconds, timeWindows), which the
    streaming and batch teams read."""
    return query.references.to_dict()


def referenced_facts(*, segment_ids: Iterable[str], exclude_id: str | None = None
                     ) -> dict[str, SegmentDefinition]:
    """The definitions behind `inSegment` ids, in the current sandbox (unknown ids are absent)."""
    valid = [str(s) for s in segment_ids if is_uuid(str(s)) and str(s) != str(exclude_id)]
    return {str(d.pk): d for d in SegmentDefinition.objects.filter(pk__in=valid)}


def is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _facts_for_classifier(definitions: Mapping[str, SegmentDefinition]
                          ) -> dict[str, ReferencedFacts]:
    """What the segment-of-segments rules need to know about each referenced definition.

    Profile-only means it reads neither events nor other audiences (whose own sources are not
    followed here): the conservative reading of "a batch audience on profile data".
    """
    out = {}
    for pk, d in definitions.items():
        refs = d.references or {}
        out[pk] = ReferencedFacts(
            profile_only=not refs.get("usesEvents") and not refs.get("segmentIds")
            and d.origin == Origin.SEGMENTATION,
            batch=d.evaluation_batch, streaming=d.evaluation_continuous,
            edge=d.evaluation_synchronous, schema=d.schema_name)
    return out


def _find_cycle(*, definition_id: str, targets: Iterable[str]) -> list[str] | None:
    """A path `definition -> target -> ... -> definition` if adding the edges closes a loop."""
    start = str(definition_id)
    edges: dict[str, list[str]] = {}
    through = SegmentDefinition.dependencies.through
    for src, dst in through.objects.filter(
            from_segmentdefinition__sandbox=current_sandbox()).values_list(
            "from_segmentdefinition_id", "to_segmentdefinition_id"):
        edges.setdefault(str(src), []).append(str(dst))
    for target in targets:
        # Depth-first search from the new target back to the definition being saved.
        stack = [(str(target), [start, str(target)])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            if node == start:
                return path
            if node in seen:
                continue
            seen.add(node)
            for nxt in edges.get(node, ()):
                stack.append((nxt, [*path, nxt]))
    return None


def _normalise_requested(requested: Mapping[str, Any] | None) -> dict[str, bool]:
    if not requested:
        return {"batch": True, "streaming": False, "edge": False}
    unknown = set(requested) - set(METHODS)
    if unknown:
        raise SiftError(ErrorCode.INVALID,
                        f"Unknown evaluation methods {sorted(unknown)}; use {list(METHODS)}.")
    out = {m: bool(requested.get(m, False)) for m in METHODS}
    if not any(out.values()):
        out["batch"] = True
    return out


def definition_validate(*, expression: str, expression_format: str = "pql/text",
                        merge_policy: MergePolicy | None = None,
                        requested: Mapping[str, Any] | None = None,
                        referenced: Mapping[str, SegmentDefinition] | None = None,
                        definition_id: str | None = None) -> Verdict:
    """Judge an expression without saving anything.

    `merge_policy` None means the sandbox's default policy. `referenced` (id -> definition) may
    be passed by a caller that already loaded them; otherwise they are read from the current
    sandbox. `definition_id` is the definition being edited (for cycle detection).
    """
    wanted = _normalise_requested(requested)
    try:
        query, text = expression_parse(expression=expression,
                                       expression_format=expression_format)
    except PQLError as exc:
        return _verdict_from_parse_error(exc, expression)

    unquoted = _unquoted_in_segment(query, text)
    if unquoted is not None:
        return Verdict(expression=text, syntax_error=unquoted)
    references = _references_json(query)
    segment_ids = tuple(references["segmentIds"])
    problems: list[Problem] = []
    if referenced is None:
        referenced = referenced_facts(segment_ids=segment_ids, exclude_id=definition_id)
    if definition_id is not None and str(definition_id) in segment_ids:
        problems.append(Problem(ErrorCode.SEGMENT_CYCLE,
                                "A definition cannot reference itself with inSegment.",
                                {"cycle": [str(definition_id), str(definition_id)]}))
    missing = [s for s in segment_ids if s not in referenced and s != str(definition_id)]
    if missing:
        problems.append(Problem(
            ErrorCode.UNKNOWN_SEGMENT,
            f"inSegment refers to definitions that do not exist in this sandbox: "
            f"{', '.join(missing)}.", {"segmentIds": missing}))
    unusable = sorted(pk for pk, d in referenced.items() if d.lifecycle_state in UNUSABLE_STATES)
    if unusable:
        problems.append(Problem(
            ErrorCode.SEGMENT_INACTIVE,
            "inSegment refers to inactive definitions, which cannot be used inside others: "
            + ", ".join(f"{referenced[pk].name} ({pk})" for pk in unusable) + ".",
            {"segmentIds": unusable}))
    if definition_id is not None and not problems and segment_ids:
        cycle = _find_cycle(definition_id=str(definition_id), targets=segment_ids)
        if cycle:
            names = _names(cycle)
            problems.append(Problem(
                ErrorCode.SEGMENT_CYCLE,
                "inSegment would create a cycle: " + " -> ".join(names) + ".",
                {"cycle": cycle}))

    policy = merge_policy or _default_policy()
    verdict = classify(query, referenced=_facts_for_classifier(referenced), ruleset=CURRENT)
    eligible = {"batch": bool(verdict.batch), "streaming": bool(verdict.streaming),
                "edge": bool(verdict.edge)}
    reasons = {m: list(verdict.reasons.get(m, [])) for m in METHODS}
    suggestions = {m: list(verdict.suggestions.get(m, [])) for m in METHODS}
    saved, refused = _decide(wanted=wanted, eligible=eligible, reasons=reasons, policy=policy)
    return Verdict(
        expression=text, problems=tuple(problems), query=query,
        query_type=verdict.query_type, ruleset=verdict.ruleset,
        eligible=eligible, reasons=reasons, suggestions=suggestions, requested=wanted,
        saved=saved, refused=refused, references=references, dependency_ids=segment_ids)


def _decide(*, wanted: Mapping[str, bool], eligible: Mapping[str, bool],
            reasons: Mapping[str, list[str]], policy: MergePolicy | None
            ) -> tuple[dict[str, bool], dict[str, list[str]]]:
    """Which requested methods are granted, and why each refused one was refused."""
    saved = {"batch": wanted["batch"], "streaming": False, "edge": False}
    refused: dict[str, list[str]] = {}
    for method in ("streaming", "edge"):
        if not wanted[method]:
            continue
        why = list(reasons.get(method) or []) if not eligible[method] else []
        if policy is None or not policy.is_active_on_edge:
            edge_policy = MergePolicy.objects.filter(is_active_on_edge=True).first()
            why.append(MERGE_POLICY_REASON.format(
                method=method.capitalize(),
                edge=f" ({edge_policy.name!r})" if edge_policy else " (none is set)",
                policy=policy.name if policy else "none"))
        if why:
            refused[method] = why
        else:
            saved[method] = True
    if refused or not any(saved.values()):
        # Every query is batch-eligible: a refused method falls back to batch.
        saved["batch"] = True
    return saved, refused


def _names(ids: list[str]) -> list[str]:
    names = {str(pk): name for pk, name in
             SegmentDefinition.objects.filter(pk__in=set(ids)).values_list("pk", "name")}
    return [f"{names.get(i, i)} ({i})" for i in ids]


def _default_policy() -> MergePolicy | None:
    return MergePolicy.objects.filter(is_default=True).first()


# --- Reads --------------------------------------------------------------------------------------


def definition_get(*, definition_id: Any) -> SegmentDefinition:
    """One definition of the current sandbox; other sandboxes' ids are simply not found."""
    definition = None
    if is_uuid(str(definition_id)):
        definition = (SegmentDefinition.objects.select_related("merge_policy", "sandbox",
                                                               "sandbox__organization")
                      .filter(pk=definition_id).first())
    if definition is None:
        raise SiftError(ErrorCode.NOT_FOUND,
                        f"The segment definition {definition_id} is not found. "
                        "Use a valid entity and try again.")
    return definition


def merge_policy_get(*, merge_policy_id: Any) -> MergePolicy:
    policy = None
    if is_uuid(str(merge_policy_id)):
        policy = MergePolicy.objects.filter(pk=merge_policy_id).first()
    if policy is None:
        raise SiftError(ErrorCode.UNKNOWN_MERGE_POLICY,
                        f"Merge policy {merge_policy_id!r} does not exist in this sandbox.",
                        {"mergePolicyId": str(merge_policy_id)})
    return policy


def definition_delete_blockers(definition: SegmentDefinition) -> list[str]:
    """Why `definition` may not be deleted; empty when it may.

    Dependents (definitions whose `inSegment` references it) block deletion, as in Adobe. The
    destinations team extends this with "activated to a destination" (Adobe refuses to delete an
    audience that is used in an activation).
    """
    return [f"{d.name} ({d.pk}) references it with inSegment."
            for d in definition.dependents.order_by("name")]


def definition_deactivate_blockers(definition: SegmentDefinition) -> list[str]:
    """Definitions still in use (draft or published) that reference `definition`."""
    return [f"{d.name} ({d.pk}) references it with inSegment."
            for d in definition.dependents.exclude(lifecycle_state__in=UNUSABLE_STATES)
            .order_by("name")]


# --- Writes -------------------------------------------------------------------------------------


def _lock_sandbox() -> None:
    """Serialise dependency-changing writes in a sandbox so two edits cannot close a cycle."""
    Sandbox.objects.select_for_update().filter(pk=current_sandbox().pk).first()


def _check_name(name: str, *, exclude_pk: Any = None) -> str:
    """Names are kept as written (Adobe echoes surrounding spaces) but must not be blank."""
    name = name or ""
    if not name.strip():
        raise SiftError(ErrorCode.INVALID, "name is required.", {"field": "name"})
    if len(name) > 255:
        raise SiftError(ErrorCode.INVALID, "name is longer than 255 characters.",
                        {"field": "name"})
    taken = SegmentDefinition.objects.filter(name=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise SiftError(ErrorCode.ALREADY_EXISTS,
                        f"A segment definition named {name!r} already exists in this sandbox; "
                        "use PATCH to change it.", {"name": name})
    return name


def _check_lifecycle_value(state: str) -> str:
    if state not in (Lifecycle.DRAFT, Lifecycle.PUBLISHED, Lifecycle.INACTIVE):
        raise SiftError(ErrorCode.INVALID_LIFECYCLE,
                        f"lifecycleState must be draft, published or inactive; got {state!r} "
                        "(delete the audience to remove it).", {"lifecycleState": state})
    return state


def _check_labels(labels: Iterable[str]) -> list[str]:
    out = []
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise SiftError(ErrorCode.INVALID, "labels must be non-empty strings.",
                            {"field": "labels"})
        out.append(label.strip())
    return sorted(set(out))


def _tags_for(names: Iterable[str]) -> list[Tag]:
    tags = []
    for name in names:
        name = str(name).strip()
        if not name:
            continue
        tag, _ = Tag.objects.get_or_create(name=name[:100])
        tags.append(tag)
    return tags


def _apply_verdict(definition: SegmentDefinition, verdict: Verdict) -> None:
    definition.expression = verdict.expression
    definition.evaluation_batch = verdict.saved["batch"]
    definition.evaluation_continuous = verdict.saved["streaming"]
    definition.evaluation_synchronous = verdict.saved["edge"]
    definition.requested_evaluation = dict(verdict.requested)
    definition.eligibility = verdict.eligibility_json()
    definition.eligibility_ruleset = verdict.ruleset
    definition.references = dict(verdict.references)


def _snapshot(definition: SegmentDefinition) -> dict[str, Any]:
    """The fields the history compares, as JSON."""
    return {
        "name": definition.name,
        "description": definition.description,
        "expression_format": definition.expression_format,
        "merge_policy": str(definition.merge_policy_id) if definition.merge_policy_id else None,
        "evaluation": {"batch": definition.evaluation_batch,
                       "streaming": definition.evaluation_continuous,
                       "edge": definition.evaluation_synchronous},
        "requested": dict(definition.requested_evaluation or {}),
        "ttl_in_days": definition.ttl_in_days,
        "lifecycle_state": definition.lifecycle_state,
        "labels": list(definition.labels or []),
        "audience_id": definition.audience_id,
        "namespace": definition.namespace,
        "external_meta": dict(definition.external_meta or {}),
        "eligibility_ruleset": definition.eligibility_ruleset,
    }


def _history(*, definition: SegmentDefinition, action: str, user: User | None, now: datetime,
             before: dict[str, Any] | None, old_expression: str = "",
             extra_fields: Iterable[str] = ()) -> DefinitionHistory:
    after = _snapshot(definition)
    before = before or {}
    changed = [k for k in after if before.get(k) != after[k]] if before else []
    if old_expression != definition.expression and before:
        changed.append("expression")
    changed.extend(f for f in extra_fields if f not in changed)
    if action == DefinitionHistory.Action.UPDATED and changed == ["evaluation"]:
        action = DefinitionHistory.Action.METHOD_CHANGED
    return DefinitionHistory.objects.create(
        definition=definition if action != DefinitionHistory.Action.DELETED else None,
        definition_uuid=definition.pk, action=action, user=user, at=now,
        changed_fields=changed,
        old_values={k: before.get(k) for k in changed if k in after},
        new_values={k: after[k] for k in changed if k in after},
        old_expression=old_expression,
        new_expression="" if action == DefinitionHistory.Action.DELETED else definition.expression,
        version=definition.version)


def definition_create(*, name: str, expression: str, expression_format: str = "pql/text",
                      description: str = "", merge_policy: MergePolicy | None = None,
                      requested: Mapping[str, Any] | None = None,
                      ttl_in_days: int | None = None,
                      lifecycle_state: str = Lifecycle.PUBLISHED,
                      origin: str = Origin.SEGMENTATION, labels: Iterable[str] = (),
                      tags: Iterable[str] = (), audience_id: str = "",
                      namespace: str = "AEPSegments", external_meta: Mapping | None = None,
                      created_in_builder: bool = False, user: User | None, now: datetime
                      ) -> SegmentDefinition:
    """Create a definition (or, with an origin other than the Segmentation Service and no
    expression, an external audience's metadata). Raises `SiftError` for anything refused."""
    external = origin != Origin.SEGMENTATION
    _check_lifecycle_value(lifecycle_state)
    if ttl_in_days is not None and not 1 <= int(ttl_in_days) <= 3650:
        raise SiftError(ErrorCode.INVALID, "ttlInDays must be between 1 and 3650.",
                        {"field": "ttlInDays"})
    with transaction.atomic():
        _lock_sandbox()
        name = _check_name(name)
        policy = merge_policy or _default_policy()
        if policy is None:
            raise SiftError(ErrorCode.UNKNOWN_MERGE_POLICY,
                            "This sandbox has no default merge policy; create one first.")
        definition = SegmentDefinition(
            name=name, description=description or "", expression_format=expression_format,
            merge_policy=policy, ttl_in_days=DEFAULT_TTL_IN_DAYS if ttl_in_days is None
            else int(ttl_in_days), lifecycle_state=lifecycle_state, origin=origin,
            namespace=namespace or "AEPSegments",
            audience_type="ExternalSegment" if external else "SegmentDefinition",
            audience_id=audience_id or "", labels=_check_labels(labels),
            external_meta=dict(external_meta or {}), created_in_builder=created_in_builder,
            created_by=user, updated_by=user, created_at=now, updated_at=now)
        if external and not expression:
            # Externally generated: membership arrives by upload, nothing to evaluate.
            definition.evaluation_batch = False
            definition.requested_evaluation = {}
            definition.eligibility = {}
            definition.references = {}
            dependency_ids: tuple[str, ...] = ()
        else:
            verdict = definition_validate(expression=expression,
                                          expression_format=expression_format,
                                          merge_policy=policy, requested=requested)
            verdict.raise_for_problems()
            _apply_verdict(definition, verdict)
            dependency_ids = verdict.dependency_ids
        if lifecycle_state == Lifecycle.PUBLISHED:
            _check_dependencies_published(dependency_ids)
        try:
            with transaction.atomic():
                definition.save()
        except IntegrityError:
            raise SiftError(ErrorCode.ALREADY_EXISTS,
                            f"A segment definition named {name!r} already exists.") from None
        if not definition.audience_id:
            definition.audience_id = str(definition.pk)
            definition.save(update_fields=["audience_id"])
        definition.dependencies.set(dependency_ids)
        definition.tags.set(_tags_for(tags))
        _history(definition=definition, action=DefinitionHistory.Action.CREATED, user=user,
                 now=now, before=None)
    return definition


def _check_dependencies_published(dependency_ids: Iterable[str]) -> None:
    unpublished = list(SegmentDefinition.objects.filter(pk__in=list(dependency_ids))
                       .exclude(lifecycle_state=Lifecycle.PUBLISHED).order_by("name"))
    if unpublished:
        raise SiftError(
            ErrorCode.INVALID_LIFECYCLE,
            "Publish the audiences this one references first: "
            + ", ".join(f"{d.name} ({d.pk}, {d.lifecycle_state})" for d in unpublished) + ".",
            {"segmentIds": [str(d.pk) for d in unpublished]})


def definition_update(*, definition: SegmentDefinition, changes: Mapping[str, Any],
                      user: User | None, now: datetime) -> SegmentDefinition:
    """Apply `changes` (keys from `EDITABLE_FIELDS`; `merge_policy` None = default policy).

    Changes to the rules (expression, format, merge policy, requested methods) re-judge the
    definition under the current ruleset; the rest keep the stored verdict.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise SiftError(ErrorCode.INVALID, f"These fields cannot be changed: {sorted(unknown)}.")
    with transaction.atomic():
        _lock_sandbox()
        current = SegmentDefinition.objects.select_for_update().get(pk=definition.pk)
        before = _snapshot(current)
        old_expression = current.expression
        external = current.origin != Origin.SEGMENTATION and not current.expression

        if "name" in changes:
            current.name = _check_name(changes["name"], exclude_pk=current.pk)
        if "description" in changes:
            current.description = changes["description"] or ""
        if "ttl_in_days" in changes:
            ttl = changes["ttl_in_days"]
            if ttl is not None and not 1 <= int(ttl) <= 3650:
                raise SiftError(ErrorCode.INVALID, "ttlInDays must be between 1 and 3650.")
            current.ttl_in_days = ttl
        if "labels" in changes:
            current.labels = _check_labels(changes["labels"] or [])
        if "audience_id" in changes and changes["audience_id"]:
            current.audience_id = str(changes["audience_id"])
        if "namespace" in changes and changes["namespace"] not in (None, current.namespace):
            raise SiftError(ErrorCode.IMMUTABLE_FIELD, "Namespace is immutable field.",
                            {"field": "namespace"})
        if "external_meta" in changes:
            current.external_meta = dict(changes["external_meta"] or {})

        rules_changed = bool(RULE_FIELDS & set(changes))
        dependency_ids = [str(pk) for pk in current.dependencies.values_list("pk", flat=True)]
        if rules_changed and not (external and not changes.get("expression")):
            if "merge_policy" in changes:
                current.merge_policy = changes["merge_policy"] or _default_policy()
            expression_format = changes.get("expression_format", current.expression_format)
            expression = changes.get("expression", current.expression)
            if "expression" in changes and "expression_format" not in changes:
                expression_format = "pql/text"
            requested = changes.get("requested") or {
                "batch": current.evaluation_batch, "streaming": current.evaluation_continuous,
                "edge": current.evaluation_synchronous}
            verdict = definition_validate(expression=expression,
                                          expression_format=expression_format,
                                          merge_policy=current.merge_policy,
                                          requested=requested, definition_id=str(current.pk))
            verdict.raise_for_problems()
            current.expression_format = expression_format
            _apply_verdict(current, verdict)
            dependency_ids = list(verdict.dependency_ids)
            if current.origin != Origin.SEGMENTATION and current.expression:
                current.evaluation_batch = current.evaluation_batch or not any(
                    (current.evaluation_continuous, current.evaluation_synchronous))

        if "lifecycle_state" in changes and changes["lifecycle_state"] != current.lifecycle_state:
            _transition(current, changes["lifecycle_state"], dependency_ids)
        elif current.lifecycle_state == Lifecycle.PUBLISHED and rules_changed:
            _check_dependencies_published(dependency_ids)

        if _snapshot(current) == before and current.expression == old_expression and \
                "tags" not in changes:
            return current  # nothing changed: no new version, no history row
        if rules_changed and (current.expression != old_expression
                              or _snapshot(current)["merge_policy"] != before["merge_policy"]):
            current.version += 1
        current.updated_by = user
        current.updated_at = now
        try:
            with transaction.atomic():
                current.save()
        except IntegrityError:
            raise SiftError(ErrorCode.ALREADY_EXISTS,
                            f"A segment definition named {current.name!r} already exists."
                            ) from None
        if rules_changed:
            current.dependencies.set(dependency_ids)
        extra = []
        if "tags" in changes:
            old_tags = sorted(current.tags.values_list("name", flat=True))
            current.tags.set(_tags_for(changes["tags"] or []))
            if sorted(current.tags.values_list("name", flat=True)) != old_tags:
                extra.append("tags")
        _history(definition=current, action=DefinitionHistory.Action.UPDATED, user=user,
                 now=now, before=before, old_expression=old_expression, extra_fields=extra)
    return current


def _transition(definition: SegmentDefinition, state: str, dependency_ids: list[str]) -> None:
    _check_lifecycle_value(state)
    if state not in TRANSITIONS[definition.lifecycle_state]:
        raise SiftError(ErrorCode.INVALID_LIFECYCLE,
                        f"A {definition.lifecycle_state} audience cannot become {state} "
                        "(a published audience never goes back to draft; copy it instead).",
                        {"from": definition.lifecycle_state, "to": state})
    if state == Lifecycle.PUBLISHED:
        _check_dependencies_published(dependency_ids)
    if state == Lifecycle.INACTIVE:
        blockers = definition_deactivate_blockers(definition)
        if blockers:
            raise SiftError(ErrorCode.HAS_DEPENDENTS,
                            f"{definition.name} cannot be deactivated: " + " ".join(blockers),
                            {"dependents": blockers})
    definition.lifecycle_state = state


def definition_set_lifecycle(*, definition: SegmentDefinition, state: str, user: User | None,
                             now: datetime) -> SegmentDefinition:
    """Publish, deactivate or re-publish (draft -> published -> inactive -> published)."""
    return definition_update(definition=definition, changes={"lifecycle_state": state},
                             user=user, now=now)


def definition_delete(*, definition: SegmentDefinition, user: User | None, now: datetime
                      ) -> None:
    """Delete a definition (its memberships go with it; its history stays)."""
    with transaction.atomic():
        _lock_sandbox()
        current = SegmentDefinition.objects.select_for_update().filter(pk=definition.pk).first()
        if current is None:
            raise SiftError(ErrorCode.NOT_FOUND,
                            f"The segment definition {definition.pk} is not found.")
        blockers = definition_delete_blockers(current)
        if blockers:
            raise SiftError(ErrorCode.HAS_DEPENDENTS,
                            f"{current.name} cannot be deleted: " + " ".join(blockers),
                            {"dependents": blockers})
        activations = activation_blockers(current)
        if activations:
            raise SiftError(ErrorCode.HAS_ACTIVATIONS,
                            f"{current.name} cannot be deleted: " + " ".join(activations),
                            {"activations": activations})
        _history(definition=current, action=DefinitionHistory.Action.DELETED, user=user, now=now,
                 before=None, old_expression=current.expression)
        current.delete()


def definition_copy(*, definition: SegmentDefinition, name: str | None = None,
                    user: User | None, now: datetime) -> SegmentDefinition:
    """A new draft with the same rules, merge policy, requested methods, tags and labels."""
    base = name or f"{definition.name} (copy)"
    candidate, n = base, 2
    while name is None and SegmentDefinition.objects.filter(name=candidate).exists():
        candidate, n = f"{base} {n}", n + 1
    return definition_create(
        name=candidate, expression=definition.expression,
        expression_format="pql/text", description=definition.description,
        merge_policy=definition.merge_policy,
        requested=definition.requested_evaluation or None, ttl_in_days=definition.ttl_in_days,
        lifecycle_state=Lifecycle.DRAFT, origin=definition.origin, labels=definition.labels,
        tags=definition.tags.values_list("name", flat=True), namespace=definition.namespace,
        created_in_builder=definition.created_in_builder, user=user, now=now)


def definition_tags_add(*, definitions: Iterable[SegmentDefinition], tags: Iterable[str],
                        user: User | None, now: datetime) -> int:
    """Add tags to many definitions (portal bulk action); returns how many definitions changed."""
    new_tags = _tags_for(tags)
    changed = 0
    with transaction.atomic():
        for definition in definitions:
            have = set(definition.tags.values_list("pk", flat=True))
            missing = [t for t in new_tags if t.pk not in have]
            if not missing:
                continue
            definition.tags.add(*missing)
            SegmentDefinition.objects.filter(pk=definition.pk).update(updated_at=now,
                                                                      updated_by=user)
            DefinitionHistory.objects.create(
                definition=definition, definition_uuid=definition.pk,
                action=DefinitionHistory.Action.UPDATED, user=user, at=now,
                changed_fields=["tags"], old_values={},
                new_values={"tags_added": [t.name for t in missing]},
                old_expression=definition.expression, new_expression=definition.expression,
                version=definition.version)
            changed += 1
    return changed
