"""The Segment Builder's rule canvas: a small model that turns into PQL, and back.

A canvas is `{"containers": [container, ...]}`. Include containers are ANDed; an exclude
container is `not (...)`. A container joins its rules with AND or OR. Rules:

- attribute: `{"kind": "attr", "path", "type", "op", "value", "value2", **time}`
- event:     `{"kind": "event", "count_op", "n", "n2", "agg_field", "agg_cmp", "steps": [...]}`
  (`count_op` a count — at least / at most / exactly / between — or an aggregation of
  `agg_field` over the matching events: sum / average / min / max); the first
  step carries a time constraint and later steps a gap after the previous one ("after" = at
  least N later, "within" = at most N later) — a sequence, written as one CHAIN.
- audience:  `{"kind": "segment", "id", "name"}` (inSegment).

`to_pql(canvas)` writes the text; `from_pql(query)` reads a parsed query back into a canvas and
returns None when the canvas cannot draw it. It checks itself: a canvas is returned only if its
own PQL parses to the very same query, so the canvas never silently changes a definition —
anything it cannot draw stays editable as text.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from audiences.pql import PQLError, parse
from audiences.pql import ast as A
from audiences.pql.printer import literal

UNITS = ["minutes", "hours", "days", "weeks", "months", "years"]
TIME_KINDS = [
    ("any", "Any time"), ("last", "In the last"), ("more_than", "More than … ago"),
    ("today", "Today"), ("yesterday", "Yesterday"), ("this_month", "This month"),
    ("last_month", "Last month"), ("before", "Before"), ("after", "After"),
    ("between", "Between dates"),
]
OPERATORS = {
    "string": [("equals", "equals"), ("not_equals", "does not equal"),
               ("contains", "contains"), ("starts_with", "starts with"),
               ("ends_with", "ends with"), ("exists", "exists"), ("missing", "does not exist")],
    "number": [("eq", "equals"), ("ne", "does not equal"), ("lt", "less than"),
               ("le", "at most"), ("gt", "greater than"), ("ge", "at least"),
               ("between", "between"), ("exists", "exists"), ("missing", "does not exist")],
    "boolean": [("is_true", "is true"), ("is_false", "is false"), ("exists", "exists"),
                ("missing", "does not exist")],
    "date": [(k, label) for k, label in TIME_KINDS if k != "any"]
    + [("exists", "exists"), ("missing", "does not exist")],
}
COUNT_OPS = [("at_least", "At least"), ("at_most", "At most"), ("exactly", "Exactly"),
             ("between", "Between"), ("sum", "Sum of"), ("average", "Average of"),
             ("min", "Minimum of"), ("max", "Maximum of")]
AGGREGATES = ("sum", "average", "min", "max")
AGG_CMPS = [(">=", "is at least"), ("<=", "is at most"), (">", "is more than"),
            ("<", "is less than"), ("=", "equals")]
GAPS = [("then", "then (any time later)"), ("within", "within"), ("after", "at least")]
STRING_CALLS = {"contains": "contains", "starts_with": "startsWith", "ends_with": "endsWith"}
NUMBER_OPS = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
TYPE_OF = {"integer": "number", "number": "number", "long": "number", "double": "number",
           "boolean": "boolean", "date": "date", "date-time": "date", "datetime": "date"}


class CannotDraw(Exception):
    """The query has a shape the canvas has no widget for."""


def field_type(schema_type: str) -> str:
    """The canvas's four value types from a schema catalogue type."""
    return TYPE_OF.get((schema_type or "").lower(), "string")


def empty() -> dict:
    return {"containers": [{"mode": "include", "join": "and", "rules": []}]}


def new_attr(path: str, type_: str) -> dict:
    kind = field_type(type_)
    return {"kind": "attr", "path": path, "type": kind, "op": OPERATORS[kind][0][0],
            "value": "", "value2": "", "time": "last", "amount": "7", "unit": "days",
            "date1": "", "date2": ""}


def new_step(event_type: str, *, first: bool) -> dict:
    return {"event_type": event_type, "time": "any", "amount": "24", "unit": "hours",
            "date1": "", "date2": "", "gap": "then" if not first else "", "gap_amount": "1",
            "gap_unit": "hours"}


def new_event(event_type: str) -> dict:
    return {"kind": "event", "count_op": "at_least", "n": "1", "n2": "",
            "agg_field": "commerce.order.priceTotal", "agg_cmp": ">=",
            "steps": [new_step(event_type, first=True)]}


def new_segment(segment_id: str, name: str) -> dict:
    return {"kind": "segment", "id": segment_id, "name": name}


# --- canvas -> PQL ------------------------------------------------------------------------------


def _unit(amount: str, unit: str) -> str:
    unit = unit if unit in UNITS else "days"
    return unit[:-1] if str(amount).strip() == "1" else unit


def _date(iso: str) -> str:
    try:
        d = date.fromisoformat(iso)
    except ValueError:
        return f"date({iso or '?'})"  # shows up as a syntax error the marketer can fix
    return f"date({d.year}, {d.month}, {d.day})"


def time_clause(item: dict) -> str | None:
    """The `occurs` right-hand side for a time constraint; None for "any time"."""
    kind, amount = item.get("time", "any"), str(item.get("amount", "")).strip() or "?"
    unit = item.get("unit", "days")
    return {
        "any": None,
        "last": f"<= {amount} {_unit(amount, unit)} before now",
        "more_than": f"> {amount} {_unit(amount, unit)} before now",
        "today": "today", "yesterday": "yesterday", "this_month": "this month",
        "last_month": "last month",
        "before": f"before {_date(item.get('date1', ''))}",
        "after": f"after {_date(item.get('date1', ''))}",
        "between": f"between {_date(item.get('date1', ''))} and {_date(item.get('date2', ''))}",
    }.get(kind)


def _number(value: str) -> str:
    return str(value).strip() or "0"


def _attr(rule: dict) -> str:
    path, op, kind = rule["path"], rule["op"], rule["type"]
    if op == "exists":
        return f"{path}.isNotNull()"
    if op == "missing":
        return f"{path}.isNull()"
    if kind == "boolean":
        return f"{path} = {'true' if op == 'is_true' else 'false'}"
    if kind == "date":
        return f"{path} occurs {time_clause({**rule, 'time': op}) or 'today'}"
    if kind == "number":
        if op == "between":
            return f"{path} >= {_number(rule['value'])} and {path} <= {_number(rule['value2'])}"
        return f"{path} {NUMBER_OPS.get(op, '=')} {_number(rule['value'])}"
    value = literal(str(rule.get("value", "")))
    if op in STRING_CALLS:
        return f"{path}.{STRING_CALLS[op]}({value})"
    return f"{path} {'!=' if op == 'not_equals' else '='} {value}"


def _what(event_type: str) -> str:
    return f"WHAT(eventType.equals({literal(event_type)}, false))"


def _event(rule: dict) -> str:
    steps, count_op = rule["steps"], rule.get("count_op", "at_least")
    n = str(rule.get("n", "1")).strip() or "1"
    if count_op != "at_least" and len(steps) == 1:
        step = steps[0]
        cond = f"eventType = {literal(step['event_type'])}"
        clause = time_clause(step)
        if clause:
            cond += f" and timestamp occurs {clause}"
        if count_op in AGGREGATES:
            cmp = rule.get("agg_cmp") if rule.get("agg_cmp") in dict(AGG_CMPS) else ">="
            return f"xEvent[{cond}].{count_op}({rule.get('agg_field') or '?'}) {cmp} {n}"
        counted = f"xEvent[{cond}].count()"
        if count_op == "between":
            n2 = str(rule.get("n2", "")).strip() or n
            return f"{counted} >= {n} and {counted} <= {n2}"
        return f"{counted} {'<=' if count_op == 'at_most' else '='} {n}"
    parts = []
    for i, step in enumerate(steps):
        text = f"C{i}: {_what(step['event_type'])}"
        if i == 0:
            clause = time_clause(step)
            if clause:
                text += f" WHEN({clause})"
            if len(steps) == 1 and n not in ("", "1"):
                text += f" COUNT({n})"
        elif step.get("gap") in ("within", "after"):
            amount = str(step.get("gap_amount", "")).strip() or "?"
            cmp = "<=" if step["gap"] == "within" else ">="
            text += f" WHEN({cmp} {amount} {_unit(amount, step.get('gap_unit', 'hours'))} " \
                    f"after C{i - 1})"
        parts.append(text)
    return f"CHAIN(xEvent, timestamp, [{', '.join(parts)}])"


def rule_pql(rule: dict) -> str:
    if rule["kind"] == "attr":
        return _attr(rule)
    if rule["kind"] == "event":
        return _event(rule)
    return f"inSegment({literal(rule['id'])})"


def _container(container: dict) -> str | None:
    rules = [rule_pql(r) for r in container["rules"]]
    if not rules:
        return None
    join = " or " if container.get("join") == "or" else " and "
    body = join.join(f"({r})" if (" and " in r or " or " in r) and len(rules) > 1 else r
                     for r in rules)
    if container.get("mode") == "exclude":
        return f"not ({body})"
    return body


def _grouped(part: str) -> str:
    """Parenthesise a container only when it has its own AND/OR (`not (...)` already is)."""
    if part.startswith("not (") or not (" and " in part or " or " in part):
        return part
    return f"({part})"


def to_pql(canvas: dict) -> str:
    parts = [p for p in (_container(c) for c in canvas["containers"]) if p]
    if len(parts) == 1:
        return parts[0]
    return "\n and ".join(_grouped(p) for p in parts)


# --- PQL -> canvas ------------------------------------------------------------------------------


def _path(node: A.Node) -> str:
    if isinstance(node, A.Name):
        return node.name
    if isinstance(node, A.Field):
        return f"{_path(node.obj)}.{node.name}"
    raise CannotDraw


def _lit(node: A.Node) -> Any:
    if not isinstance(node, A.Literal):
        raise CannotDraw
    return node.value


def _iso(node: A.Node) -> str:
    if not (isinstance(node, A.Call) and node.name == "date" and node.obj is None
            and len(node.args) == 3):
        raise CannotDraw
    y, m, d = (_lit(a) for a in node.args)
    return date(int(y), int(m), int(d)).isoformat()


def _plural_unit(unit: str) -> str:
    unit = unit if unit.endswith("s") else unit + "s"
    if unit not in UNITS:
        raise CannotDraw
    return unit


def _time(clause: A.Node | None) -> dict:
    base = {"time": "any", "amount": "", "unit": "days", "date1": "", "date2": ""}
    if clause is None:
        return base
    if isinstance(clause, A.Relative) and isinstance(clause.ref, A.Now) \
            and clause.direction == "before" and clause.cmp in ("<=", ">"):
        return {**base, "time": "last" if clause.cmp == "<=" else "more_than",
                "amount": str(clause.amount), "unit": _plural_unit(clause.unit)}
    if isinstance(clause, A.On):
        clause = clause.ref
    if isinstance(clause, A.Today):
        return {**base, "time": "today"}
    if isinstance(clause, A.Yesterday):
        return {**base, "time": "yesterday"}
    if isinstance(clause, A.Period) and clause.unit == "month" and clause.which in ("this",
                                                                                     "last"):
        return {**base, "time": f"{clause.which}_month"}
    if isinstance(clause, A.Directional) and clause.direction in ("before", "after"):
        return {**base, "time": clause.direction, "date1": _iso(clause.ref)}
    if isinstance(clause, A.Between):
        return {**base, "time": "between", "date1": _iso(clause.start),
                "date2": _iso(clause.end)}
    raise CannotDraw


def _flatten(node: A.Node, op: str) -> list[A.Node]:
    if isinstance(node, A.BinOp) and node.op == op:
        return _flatten(node.left, op) + _flatten(node.right, op)
    return [node]


def _event_type(what: A.Node) -> str:
    if isinstance(what, A.Call) and what.name == "equals" and isinstance(what.obj, A.Name) \
            and what.obj.name == "eventType" and len(what.args) == 2:
        return str(_lit(what.args[0]))
    raise CannotDraw


def _chain(node: A.Chain) -> dict:
    if not isinstance(node.array, A.XEvent) or node.ts_field != "timestamp":
        raise CannotDraw
    steps = []
    for i, step in enumerate(node.steps):
        if step.where is not None or step.negated or (step.count and i > 0):
            raise CannotDraw
        item = new_step(_event_type(step.what), first=i == 0)
        if i == 0:
            item.update(_time(step.when))
        elif step.when is not None:
            when = step.when
            if not (isinstance(when, A.Relative) and isinstance(when.ref, A.StepRef)
                    and when.direction == "after" and when.cmp in ("<=", ">=")):
                raise CannotDraw
            item.update(gap="within" if when.cmp == "<=" else "after",
                        gap_amount=str(when.amount), gap_unit=_plural_unit(when.unit))
        steps.append(item)
    first = node.steps[0]
    return {**new_event(""), "n": str(first.count or 1), "steps": steps}


def _counted(node: A.Node) -> dict:
    """`xEvent[eventType = "x" (and timestamp occurs T)].count()` (or `.sum(path)`, ...) ->
    one event step."""
    if not (isinstance(node, A.Call) and isinstance(node.obj, A.Filter)
            and isinstance(node.obj.obj, A.XEvent)):
        raise CannotDraw
    parts = _flatten(node.obj.cond, "and")
    head = parts[0]
    if not (isinstance(head, A.BinOp) and head.op == "=" and isinstance(head.left, A.Name)
            and head.left.name == "eventType") or len(parts) > 2:
        raise CannotDraw
    step = new_step(str(_lit(head.right)), first=True)
    if len(parts) == 2:
        occurs = parts[1]
        if not (isinstance(occurs, A.Occurs) and isinstance(occurs.subject, A.Name)
                and occurs.subject.name == "timestamp"):
            raise CannotDraw
        step.update(_time(occurs.clause))
    return step


def _rule(node: A.Node, types: dict[str, str]) -> dict:
    if isinstance(node, A.Chain):
        return _chain(node)
    if isinstance(node, A.Call) and node.obj is None and node.name == "inSegment":
        return new_segment(str(_lit(node.args[0])), "")
    if isinstance(node, A.Call) and node.name in ("isNull", "isNotNull") and not node.args:
        path = _path(node.obj)
        return {**new_attr(path, types.get(path, "string")),
                "op": "missing" if node.name == "isNull" else "exists"}
    if isinstance(node, A.Call) and node.name in STRING_CALLS.values() and len(node.args) == 1:
        op = next(k for k, v in STRING_CALLS.items() if v == node.name)
        return {**new_attr(_path(node.obj), "string"), "op": op,
                "value": str(_lit(node.args[0]))}
    if isinstance(node, A.Occurs):
        path = _path(node.subject)
        timed = _time(node.clause)
        return {**new_attr(path, "date"), **timed, "op": timed["time"]}
    if isinstance(node, A.BinOp) and node.op in ("=", "!=", "<", "<=", ">", ">="):
        call = node.left
        if isinstance(call, A.Call) and call.name == "count" and not call.args:
            count_op = {"<=": "at_most", "=": "exactly"}.get(node.op)
            if count_op is None:
                raise CannotDraw
            return {**new_event(""), "count_op": count_op, "n": str(_lit(node.right)),
                    "steps": [_counted(call)]}
        if isinstance(call, A.Call) and call.name in AGGREGATES and len(call.args) == 1:
            return {**new_event(""), "count_op": call.name, "n": str(_lit(node.right)),
                    "agg_field": _path(call.args[0]), "agg_cmp": node.op,
                    "steps": [_counted(call)]}
        path, value = _path(node.left), _lit(node.right)
        if isinstance(value, bool) and node.op == "=":
            return {**new_attr(path, "boolean"), "op": "is_true" if value else "is_false"}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            op = next(k for k, v in NUMBER_OPS.items() if v == node.op)
            return {**new_attr(path, "number"), "op": op, "value": str(value)}
        if isinstance(value, str) and node.op in ("=", "!="):
            return {**new_attr(path, "string"), "value": value,
                    "op": "equals" if node.op == "=" else "not_equals"}
    raise CannotDraw


def _container_of(node: A.Node, types: dict[str, str], mode: str) -> dict:
    ors = _flatten(node, "or")
    if len(ors) > 1:
        return {"mode": mode, "join": "or", "rules": [_rule(n, types) for n in ors]}
    return {"mode": mode, "join": "and", "rules": [_rule(n, types) for n in
                                                   _flatten(node, "and")]}


def from_pql(query: Any, *, types: dict[str, str] | None = None) -> dict | None:
    """The canvas for a parsed query, or None when the canvas cannot draw it exactly."""
    types = types or {}
    try:
        containers: list[dict] = []
        # AND is left-associative: leading plain rules share the first container; a plain rule
        # after a grouped one gets its own container so the PQL keeps the same shape.
        for part in _flatten(query.tree.body, "and"):
            if isinstance(part, A.Not):
                containers.append(_container_of(part.operand, types, "exclude"))
            elif isinstance(part, A.BinOp) and part.op == "or":
                containers.append(_container_of(part, types, "include"))
            elif len(containers) == 1 and containers[0].get("plain"):
                containers[0]["rules"].append(_rule(part, types))
            else:
                containers.append({"mode": "include", "join": "and", "plain": not containers,
                                   "rules": [_rule(part, types)]})
        for box in containers:
            box.pop("plain", None)
        canvas = {"containers": containers or empty()["containers"]}
        return canvas if parse(to_pql(canvas)) == query else None
    except (CannotDraw, PQLError, ValueError, TypeError, StopIteration):
        return None
