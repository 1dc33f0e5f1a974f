"""AST -> canonical PQL text. `parse(to_pql(tree)) == tree` for every tree the parser builds.

Canonical form: lower-case keywords, upper-case CHAIN/WHAT/WHEN/COUNT/WHERE, single spaces
around binary operators, parentheses only where precedence needs them.
"""

from __future__ import annotations

import json

from audiences.pql import ast as A

# Binding strength, loosest first (pql.md §5).
PREC = {"let": 1, "or": 2, "and": 3, "not": 4, "cmp": 5, "add": 6, "mul": 7, "neg": 8,
        "postfix": 9, "atom": 10}
CMP_OPS = set(A.COMPARISONS) | {"in", "notIn", "like", "matches"}


def prec(node: A.Node) -> int:
    if isinstance(node, A.Let):
        return PREC["let"]
    if isinstance(node, A.BinOp):
        if node.op == "or":
            return PREC["or"]
        if node.op == "and":
            return PREC["and"]
        if node.op in CMP_OPS:
            return PREC["cmp"]
        if node.op in ("+", "-"):
            return PREC["add"]
        return PREC["mul"]
    if isinstance(node, A.Not):
        return PREC["not"]
    if isinstance(node, A.Occurs):
        return PREC["cmp"]
    if isinstance(node, A.Neg):
        return PREC["neg"]
    if isinstance(node, A.Literal) and isinstance(node.value, int | float) and not isinstance(
            node.value, bool) and node.value < 0:
        return PREC["neg"]
    if isinstance(node, A.Select | A.Quantifier | A.Aggregate | A.Lambda):
        return 0  # always parenthesised inside anything else
    return PREC["atom"]


def literal(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        text = repr(value)
        if text in ("inf", "-inf", "nan"):
            raise ValueError("PQL has no literal for infinity or NaN")
        return text
    return str(value)


class Printer:
    def p(self, node: A.Node, min_prec: int = 0) -> str:
        text = getattr(self, "p_" + type(node).__name__)(node)
        if prec(node) < min_prec:
            return f"({text})"
        return text

    def p_Query(self, node: A.Query) -> str:
        body = self.p(node.body)
        if node.params:
            return f"({', '.join(node.params)}) => {body}"
        return body

    def p_Literal(self, node: A.Literal) -> str:
        return literal(node.value)

    def p_ListLit(self, node: A.ListLit) -> str:
        return "[" + ", ".join(self.p(i, 1) for i in node.items) + "]"

    def p_ObjectLit(self, node: A.ObjectLit) -> str:
        return "{" + ", ".join(f"{literal(k)}: {self.p(v, 1)}" for k, v in node.entries) + "}"

    def p_Name(self, node: A.Name) -> str:
        return node.name

    def p_Param(self, node: A.Param) -> str:
        return f"${node.position}"

    def p_Up(self, node: A.Up) -> str:
        return "^" * node.levels + "." + node.name

    def p_This(self, node) -> str:
        return "this"

    def p_XEvent(self, node) -> str:
        return "xEvent"

    def p_Field(self, node: A.Field) -> str:
        return f"{self.p(node.obj, PREC['postfix'])}.{node.name}"

    def p_Call(self, node: A.Call) -> str:
        args = ", ".join(self.p(a, 1) if not isinstance(a, A.Lambda) else self.p_Lambda(a)
                         for a in node.args)
        if node.obj is None:
            return f"{node.name}({args})"
        return f"{self.p(node.obj, PREC['postfix'])}.{node.name}({args})"

    def p_Lambda(self, node: A.Lambda) -> str:
        return f"({', '.join(node.params)}) => {self.p(node.body)}"

    def p_Filter(self, node: A.Filter) -> str:
        return f"{self.p(node.obj, PREC['postfix'])}[{self.p(node.cond)}]"

    def p_Not(self, node: A.Not) -> str:
        operand = node.operand
        if prec(operand) <= PREC["cmp"] and not isinstance(operand, A.Not):
            # Not needed by the grammar, but `not (a = b)` is how people read and write it.
            return f"not ({self.p(operand)})"
        return f"not {self.p(operand, PREC['not'])}"

    def p_Neg(self, node: A.Neg) -> str:
        inner = self.p(node.operand, PREC["neg"])
        if inner.startswith("-"):
            inner = f"({inner})"
        return f"-{inner}"

    def p_BinOp(self, node: A.BinOp) -> str:
        level = prec(node)
        if level == PREC["cmp"]:
            # Comparisons do not chain: both sides bind tighter.
            return f"{self.p(node.left, level + 1)} {node.op} {self.p(node.right, level + 1)}"
        return f"{self.p(node.left, level)} {node.op} {self.p(node.right, level + 1)}"

    def p_Occurs(self, node: A.Occurs) -> str:
        return f"{self.p(node.subject, PREC['cmp'] + 1)} occurs {self.clause(node.clause)}"

    def clause(self, node: A.Node) -> str:
        if isinstance(node, A.Relative):
            unit = node.unit if node.amount == 1 else _plural(node.unit)
            return f"{node.cmp} {node.amount} {unit} {node.direction} {self.ref(node.ref)}"
        if isinstance(node, A.Directional):
            return f"{node.direction} {self.ref(node.ref)}"
        if isinstance(node, A.Between):
            return f"between {self.ref(node.start)} and {self.ref(node.end)}"
        text = self.ref(node.ref)
        # `on` keeps a label or an expression from reading as something else.
        if isinstance(node.ref, A.Now | A.Today | A.Yesterday | A.Tomorrow | A.Period):
            return text
        return f"on {text}"

    def ref(self, node: A.Node) -> str:
        if isinstance(node, A.Now):
            return "now"
        if isinstance(node, A.Today):
            return "today"
        if isinstance(node, A.Yesterday):
            return "yesterday"
        if isinstance(node, A.Tomorrow):
            return "tomorrow"
        if isinstance(node, A.Period):
            return f"{node.which} {node.unit}"
        if isinstance(node, A.StepRef):
            return node.label
        return self.p(node, PREC["postfix"])

    def p_Now(self, node) -> str:
        return "now"

    def p_Today(self, node) -> str:
        return "today"

    def p_Yesterday(self, node) -> str:
        return "yesterday"

    def p_Tomorrow(self, node) -> str:
        return "tomorrow"

    def binding(self, node: A.Binding) -> str:
        text = f"{node.var} from {self.p(node.source, PREC['or'])}"
        if node.where is not None:
            text += f" where {self.p(node.where, PREC['or'])}"
        return text

    def p_Select(self, node: A.Select) -> str:
        return "select " + ", ".join(self.binding(b) for b in node.bindings)

    def p_Quantifier(self, node: A.Quantifier) -> str:
        return f"{node.kind} " + ", ".join(self.binding(b) for b in node.bindings)

    def p_Aggregate(self, node: A.Aggregate) -> str:
        bindings = ", ".join(self.binding(b) for b in node.bindings)
        if node.expr is None:
            return f"{node.kind} {bindings}"
        return f"{node.kind} {self.p(node.expr, PREC['add'])} over {bindings}"

    def p_Let(self, node: A.Let) -> str:
        return f"let {node.name} = {self.p(node.value, PREC['let'] + 1)} in {self.p(node.body)}"

    def p_Chain(self, node: A.Chain) -> str:
        steps = ", ".join(self.step(s) for s in node.steps)
        return f"CHAIN({self.p(node.array, 1)}, {node.ts_field}, [{steps}])"

    def step(self, node: A.Step) -> str:
        text = f"{node.label}: {'!' if node.negated else ''}WHAT({self.p(node.what)})"
        if node.when is not None:
            text += f" WHEN({self.clause(node.when)})"
        if node.count is not None:
            text += f" COUNT({node.count})"
        if node.where is not None:
            text += f" WHERE({self.p(node.where)})"
        return text


def _plural(unit: str) -> str:
    return {"century": "centuries", "millennium": "millennia"}.get(unit, unit + "s")


def to_pql(node: A.Node) -> str:
    return Printer().p(node)
