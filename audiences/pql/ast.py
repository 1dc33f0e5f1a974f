"""The PQL abstract syntax tree: frozen, hashable dataclasses.

Two queries are equal when their trees are equal, so `parse(q.to_pql()) == q` is a plain
comparison. Parenthesisation is not kept (the printer adds what precedence needs), keywords are
normalised (`AND` -> `and`), and a minus sign in front of a number literal is folded into it.

Reading guide (what each node means is fixed in `audiences/pql/__init__.py`):

    Literal(value)                 "x", 3, 2.5, true
    ListLit(items)                 [1, 2, 3]
    ObjectLit(entries)             {"k": expr, ...}          entries: ((key, expr), ...)
    Name(name)                     a bare identifier: a variable, else a field of the current
                                   item (inside a filter/WHAT/method argument), else of the
                                   profile
    Param(position)                $1 (the profile)
    Up(levels, name)               ^^.person: a field of the item `levels` scopes up
    This()                         `this`, the current item or group
    XEvent()                       `xEvent`, the profile's ExperienceEvents
    Field(obj, name)               obj.name (maps over arrays and flattens)
    Call(obj, name, args)          obj.name(args) when obj is not None, else name(args)
    Lambda(params, body)           (a, b) => body
    Filter(obj, cond)              obj[cond]
    Not(operand)                   not x / !x   (two-valued: not null == true)
    Neg(operand)                   -x (not on a number literal: that is folded)
    BinOp(op, left, right)         and or = != < <= > >= + - * / % in notIn like matches
    Occurs(subject, clause)        subject occurs <clause>
    Select(bindings)               select V from A where C, W from B where D
    Quantifier(kind, bindings)     exists ... / forall ...
    Aggregate(kind, expr, bindings)   sum|average|min|max [expr over] V from A where C
    Let(name, value, body)         let S = value in body
    Chain(array, ts_field, steps)  CHAIN(xEvent, timestamp, [steps])
    Step(label, what, when, count, where, negated)
    Query(params, body)            optional lambda head `(p) =>` and the body

Time clauses (right-hand side of `occurs` and of WHEN):

    Relative(cmp, amount, unit, direction, ref)   <= 3 days before now
    Directional(direction, ref)                   before today / after date(2020,1,1)
    On(ref)                                       today / on date(...) / last month
    Between(start, end)                           between date(..) and date(..)

Time references: Now(), Today(), Yesterday(), Tomorrow(), Period(which, unit) for
`this|last|next unit`, StepRef(label) for a CHAIN step, or any expression (date(...),
X.timestamp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNITS = (
    "millisecond", "second", "minute", "hour", "day", "week", "month", "year", "decade",
    "century", "millennium",
)
UNIT_ALIASES = {u: u for u in UNITS} | {u + "s": u for u in UNITS} | {
    "centuries": "century", "millennia": "millennium", "millenium": "millennium",
    "millenia": "millennium"}
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
DIRECTIONS = ("before", "after", "from")


class Node:
    """Base of every node."""

    __slots__ = ()

    def children(self) -> tuple[Node, ...]:
        out = []
        for value in self.__dict__.values() if hasattr(self, "__dict__") else ():
            out.extend(_nodes_in(value))
        return tuple(out)


def _nodes_in(value: Any) -> list[Node]:
    if isinstance(value, Node):
        return [value]
    if isinstance(value, tuple):
        out: list[Node] = []
        for item in value:
            out.extend(_nodes_in(item))
        return out
    return []


def node(cls):
    return dataclass(frozen=True)(cls)


@node
class Literal(Node):
    value: Any  # str | int | float | bool


@node
class ListLit(Node):
    items: tuple


@node
class ObjectLit(Node):
    entries: tuple  # ((key: str, value: Node), ...)


@node
class Name(Node):
    name: str


@node
class Param(Node):
    position: int


@node
class Up(Node):
    levels: int
    name: str


@node
class This(Node):
    pass


@node
class XEvent(Node):
    pass


@node
class Field(Node):
    obj: Node
    name: str


@node
class Call(Node):
    obj: Node | None
    name: str
    args: tuple


@node
class Lambda(Node):
    params: tuple
    body: Node


@node
class Filter(Node):
    obj: Node
    cond: Node


@node
class Not(Node):
    operand: Node


@node
class Neg(Node):
    operand: Node


@node
class BinOp(Node):
    op: str
    left: Node
    right: Node


# --- time -------------------------------------------------------------------------------


@node
class Now(Node):
    pass


@node
class Today(Node):
    pass


@node
class Yesterday(Node):
    pass


@node
class Tomorrow(Node):
    pass


@node
class Period(Node):
    which: str  # this | last | next
    unit: str


@node
class StepRef(Node):
    label: str


@node
class Relative(Node):
    cmp: str
    amount: int
    unit: str
    direction: str
    ref: Node


@node
class Directional(Node):
    direction: str
    ref: Node


@node
class On(Node):
    ref: Node


@node
class Between(Node):
    start: Node
    end: Node


@node
class Occurs(Node):
    subject: Node
    clause: Node


# --- comprehensions and events ----------------------------------------------------------


@node
class Binding(Node):
    var: str
    source: Node
    where: Node | None


@node
class Select(Node):
    bindings: tuple


@node
class Quantifier(Node):
    kind: str  # exists | forall
    bindings: tuple


@node
class Aggregate(Node):
    kind: str  # sum | average | min | max
    expr: Node | None
    bindings: tuple


@node
class Let(Node):
    name: str
    value: Node
    body: Node


@node
class Step(Node):
    label: str
    what: Node
    when: Node | None = None
    count: int | None = None
    where: Node | None = None
    negated: bool = False


@node
class Chain(Node):
    array: Node
    ts_field: str
    steps: tuple


@node
class Query(Node):
    params: tuple
    body: Node


TIME_REFS = (Now, Today, Yesterday, Tomorrow, Period, StepRef)
CLAUSES = (Relative, Directional, On, Between)


def walk(root: Node):
    """Every node of a tree, parents before children."""
    stack = [root]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children()))
