"""A recursive-descent parser from PQL text to the AST of `ast.py`.

Hand-written rather than generated (the project lists Lark for parsing): PQL's keywords are
contextual (`count`, `in`, `from`, `sum` are also field or method names; `in` also ends a
`let`), `select`/`exists` bindings end at a top-level comma, and a marketer needs errors that
say what was expected where and suggest the nearest function name. Each of those is a
one-line decision here and a grammar-level workaround in a generated parser.
"""

from __future__ import annotations

import difflib

from audiences.pql import ast as A
from audiences.pql.lexer import PQLError, Token, error_at, tokenize

# Functions called without a receiver, and methods called on a value, with their arities
# (min, max; None = any). Anything else is an error that names the nearest known one.
FUNCTIONS = {
    "if": (3, 3), "date": (3, 3), "currentMonth": (0, 0), "currentYear": (0, 0),
    "currentDayOfMonth": (0, 0), "inSegment": (1, 2), "mapEntry": (2, 2),
}
METHODS = {
    "count": (0, 0), "sum": (0, 1), "average": (0, 1), "min": (0, 1), "max": (0, 1),
    "distinct": (0, 0), "groupBy": (1, 1), "filter": (1, 1), "map": (1, 1), "exists": (1, 1),
    "topN": (2, 2), "bottomN": (2, 2), "head": (0, 0), "intersects": (1, 1),
    "intersection": (1, 1), "subsetOf": (1, 1), "supersetOf": (1, 1), "includes": (1, 1),
    "get": (1, 1), "keys": (0, 0), "values": (0, 0),
    "startsWith": (1, 2), "doesNotStartWith": (1, 2), "endsWith": (1, 2),
    "doesNotEndWith": (1, 2), "contains": (1, 2), "doesNotContain": (1, 2),
    "equals": (1, None), "notEqualTo": (1, None), "matches": (1, 1), "regexGroup": (1, 2),
    "isNull": (0, 0), "isNotNull": (0, 0), "getMonth": (0, 0), "getYear": (0, 0),
    "getDayOfMonth": (0, 0),
}
KEYWORDS = {"and", "or", "not", "in", "notin", "like", "matches", "occurs", "select", "exists",
            "forall", "from", "where", "let", "if", "true", "false"}
TIME_WORDS = {"now", "today", "yesterday", "tomorrow"}
MAX_CHAIN_STEPS = 6


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.no_in = 0  # > 0 while parsing a `let` value: a top-level `in` ends it
        self.labels: list[set[str]] = []  # CHAIN step labels visible to WHEN clauses

    # --- token helpers --------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tok
        self.i += 1
        return token

    def is_op(self, value: str, k: int = 0) -> bool:
        token = self.peek(k) if k else self.tok
        return token.kind == "op" and token.value == value

    def is_kw(self, word: str, k: int = 0) -> bool:
        token = self.peek(k) if k else self.tok
        return token.kind == "name" and str(token.value).lower() == word

    def accept_op(self, value: str) -> bool:
        if self.is_op(value):
            self.i += 1
            return True
        return False

    def accept_kw(self, word: str) -> bool:
        if self.is_kw(word):
            self.i += 1
            return True
        return False

    def fail(self, message: str, hint: str = "", token: Token | None = None) -> PQLError:
        token = token or self.tok
        return error_at(self.text, token.pos, message, hint)

    def describe(self, token: Token) -> str:
        if token.kind == "eof":
            return "the end of the expression"
        if token.kind == "string":
            return f'the string "{token.value}"'
        return f"'{self.text[token.pos:token.end]}'"

    def expect_op(self, value: str, what: str = "") -> Token:
        if not self.is_op(value):
            raise self.fail(f"Expected '{value}'{what} but found {self.describe(self.tok)}")
        return self.advance()

    def expect_kw(self, word: str, shown: str | None = None) -> Token:
        if not self.is_kw(word):
            raise self.fail(f"Expected '{shown or word}' but found {self.describe(self.tok)}")
        return self.advance()

    def expect_name(self, what: str) -> str:
        if self.tok.kind != "name":
            raise self.fail(f"Expected {what} but found {self.describe(self.tok)}")
        return str(self.advance().value)

    # --- grammar --------------------------------------------------------------------------
    def parse(self) -> A.Query:
        if self.tok.kind == "eof":
            raise self.fail("The expression is empty", "Write a condition, for example "
                            'homeAddress.countryISO = "US".')
        params: tuple = ()
        if self.is_op("(") and self._lambda_ahead():
            params = self._lambda_params()
        body = self.expr()
        if self.tok.kind != "eof":
            hint = ""
            if self.tok.kind == "name" and not self.is_kw("and") and not self.is_kw("or"):
                hint = "Combine conditions with 'and' or 'or'."
            if self.is_op(")"):
                hint = "There is a closing parenthesis without an opening one."
            raise self.fail(f"Unexpected {self.describe(self.tok)}", hint)
        return A.Query(params, body)

    def _lambda_ahead(self) -> bool:
        k = 1
        if self.peek(k).kind != "name":
            return False
        while True:
            if self.peek(k).kind != "name":
                return False
            k += 1
            if self.is_op(")", k):
                return self.is_op("=>", k + 1)
            if not self.is_op(",", k):
                return False
            k += 1

    def _lambda_params(self) -> tuple:
        self.expect_op("(")
        names = [self.expect_name("a parameter name")]
        while self.accept_op(","):
            names.append(self.expect_name("a parameter name"))
        self.expect_op(")")
        self.expect_op("=>")
        return tuple(names)

    def expr(self) -> A.Node:
        if self.is_kw("let") and self.peek().kind == "name" and self.is_op("=", 2):
            self.advance()
            name = self.expect_name("a variable name")
            self.expect_op("=")
            self.no_in += 1
            try:
                value = self.expr()
            finally:
                self.no_in -= 1
            self.expect_kw("in")
            body = self.expr()
            return A.Let(name, value, body)
        return self.or_expr()

    def or_expr(self) -> A.Node:
        left = self.and_expr()
        while self.is_kw("or"):
            self.advance()
            left = A.BinOp("or", left, self.and_expr())
        return left

    def and_expr(self) -> A.Node:
        left = self.not_expr()
        while self.is_kw("and"):
            self.advance()
            left = A.BinOp("and", left, self.not_expr())
        return left

    def not_expr(self) -> A.Node:
        if self.is_kw("not") or (self.is_op("!") and not self.is_op("=", 1)):
            self.advance()
            return A.Not(self.not_expr())
        return self.cmp_expr()

    def cmp_expr(self) -> A.Node:
        left = self.add_expr()
        token = self.tok
        if token.kind == "op" and token.value in A.COMPARISONS:
            self.advance()
            return A.BinOp(token.value, left, self.add_expr())
        if token.kind == "name":
            word = str(token.value).lower()
            if word == "in" and not self.no_in:
                self.advance()
                return A.BinOp("in", left, self.add_expr())
            if word == "notin":
                self.advance()
                return A.BinOp("notIn", left, self.add_expr())
            if word in ("like", "matches"):
                self.advance()
                return A.BinOp(word, left, self.add_expr())
            if word == "occurs":
                self.advance()
                return A.Occurs(left, self.time_clause())
        return left

    def add_expr(self) -> A.Node:
        left = self.mul_expr()
        while self.tok.kind == "op" and self.tok.value in ("+", "-"):
            op = self.advance().value
            left = A.BinOp(op, left, self.mul_expr())
        return left

    def mul_expr(self) -> A.Node:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.value in ("*", "/", "%"):
            op = self.advance().value
            left = A.BinOp(op, left, self.unary())
        return left

    def unary(self) -> A.Node:
        if self.is_op("-"):
            self.advance()
            operand = self.unary()
            if isinstance(operand, A.Literal) and type(operand.value) in (int, float) \
                    and not isinstance(operand.value, bool):
                return A.Literal(-operand.value)
            return A.Neg(operand)
        return self.postfix()

    def postfix(self) -> A.Node:
        node = self.primary()
        while True:
            if self.is_op("."):
                self.advance()
                name_token = self.tok
                name = self.expect_name("a field or method name after '.'")
                if self.is_op("("):
                    args = self.call_args()
                    self._check_call(name, args, name_token, method=True)
                    node = A.Call(node, name, args)
                else:
                    node = A.Field(node, name)
            elif self.is_op("["):
                self.advance()
                saved, self.no_in = self.no_in, 0
                cond = self.expr()
                self.no_in = saved
                self.expect_op("]", " to close the filter")
                node = A.Filter(node, cond)
            else:
                return node

    def call_args(self) -> tuple:
        self.expect_op("(")
        saved, self.no_in = self.no_in, 0
        args = []
        if not self.is_op(")"):
            while True:
                if self.is_op("(") and self._lambda_ahead():
                    params = self._lambda_params()
                    args.append(A.Lambda(params, self.expr()))
                else:
                    args.append(self.expr())
                if not self.accept_op(","):
                    break
        self.no_in = saved
        self.expect_op(")", " to close the argument list")
        return tuple(args)

    def _check_call(self, name: str, args: tuple, token: Token, *, method: bool) -> None:
        table = METHODS if method else FUNCTIONS
        if name not in table:
            known = sorted(table)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            lower = {k.lower(): k for k in known}
            guess = close[0] if close else lower.get(name.lower())
            kind = "method" if method else "function"
            hint = f"Did you mean `{guess}`?" if guess else f"Known {kind}s: {', '.join(known)}."
            raise self.fail(f"Unknown {kind} '{name}'", hint, token)
        low, high = table[name]
        if len(args) < low or (high is not None and len(args) > high):
            expected = str(low) if low == high else (
                f"{low} or more" if high is None else f"{low} to {high}")
            raise self.fail(f"'{name}' takes {expected} argument(s), got {len(args)}", "",
                            token)

    def primary(self) -> A.Node:
        token = self.tok
        if token.kind == "string":
            self.advance()
            return A.Literal(token.value)
        if token.kind in ("int", "float"):
            self.advance()
            return A.Literal(token.value)
        if token.kind == "param":
            self.advance()
            return A.Param(int(token.value))
        if token.kind == "op":
            if token.value == "(":
                if self._lambda_ahead():
                    params = self._lambda_params()
                    return A.Lambda(params, self.expr())
                self.advance()
                saved, self.no_in = self.no_in, 0
                inner = self.expr()
                self.no_in = saved
                self.expect_op(")", " to close the parenthesis")
                return inner
            if token.value == "[":
                self.advance()
                items = []
                if not self.is_op("]"):
                    while True:
                        items.append(self.expr())
                        if not self.accept_op(","):
                            break
                self.expect_op("]", " to close the list")
                return A.ListLit(tuple(items))
            if token.value == "{":
                self.advance()
                entries = []
                if not self.is_op("}"):
                    while True:
                        if self.tok.kind != "string":
                            raise self.fail("Object keys must be strings in double quotes")
                        key = str(self.advance().value)
                        self.expect_op(":")
                        entries.append((key, self.expr()))
                        if not self.accept_op(","):
                            break
                self.expect_op("}", " to close the object")
                return A.ObjectLit(tuple(entries))
            if token.value == "^":
                levels = 0
                while self.accept_op("^"):
                    levels += 1
                self.accept_op(".")
                return A.Up(levels, self.expect_name("a field name after '^'"))
            raise self.fail(f"Unexpected {self.describe(token)}",
                            "Expected a value, a field or a condition here.")
        if token.kind == "eof":
            raise self.fail("The expression ends too early",
                            "Something is missing at the end (a value or a closing bracket?).")
        word = str(token.value)
        low = word.lower()
        if low in ("true", "false"):
            self.advance()
            return A.Literal(low == "true")
        if word == "xEvent":
            self.advance()
            return A.XEvent()
        if low == "this" and word == "this":
            self.advance()
            return A.This()
        if low == "select" and self._binding_ahead(1):
            self.advance()
            return A.Select(self.bindings())
        if low in ("exists", "forall") and self._binding_ahead(1):
            self.advance()
            return A.Quantifier(low, self.bindings())
        if low in ("sum", "average", "min", "max") and self.peek().kind in ("name", "param") \
                and not self.is_kw("and", 1) and not self.is_kw("or", 1):
            return self.aggregate(low)
        if low == "let" and self.peek().kind == "name" and self.is_op("=", 2):
            return self.expr()  # a `let` inside a larger expression: its body runs to the end
        if low == "chain" and self.is_op("(", 1):
            return self.chain()
        if low in TIME_WORDS and word == low:
            self.advance()
            return {"now": A.Now, "today": A.Today, "yesterday": A.Yesterday,
                    "tomorrow": A.Tomorrow}[low]()
        if low in ("not", "and", "or", "in", "notin", "like", "matches", "occurs", "where",
                   "from"):
            raise self.fail(f"Unexpected keyword '{word}'",
                            "A value or a field is missing before it.")
        self.advance()
        if self.is_op("("):
            args = self.call_args()
            if low == "if":
                word = "if"
            self._check_call(word, args, token, method=False)
            return A.Call(None, word, args)
        return A.Name(word)

    def _binding_ahead(self, k: int) -> bool:
        return self.peek(k).kind == "name" and self.is_kw("from", k + 1)

    def bindings(self) -> tuple:
        out = [self.binding()]
        while self.is_op(",") and self._binding_ahead(1):
            self.advance()
            out.append(self.binding())
        return tuple(out)

    def binding(self) -> A.Binding:
        var = self.expect_name("a variable name")
        self.expect_kw("from")
        source = self.or_expr()
        where = None
        if self.is_kw("where") or self.is_op(":"):
            self.advance()
            where = self.or_expr()
        return A.Binding(var, source, where)

    def aggregate(self, kind: str) -> A.Node:
        self.advance()
        if self._binding_ahead(0):
            # Short form: `sum X from numbers where X > 0` sums the items themselves.
            return A.Aggregate(kind, None, self.bindings())
        expr = self.add_expr()
        if not self.is_kw("over"):
            raise self.fail(f"Expected 'over' after the expression of '{kind}'",
                            f"Write: {kind} X.value over X from xEvent where ...")
        self.advance()
        return A.Aggregate(kind, expr, self.bindings())

    # --- time -----------------------------------------------------------------------------
    def time_clause(self) -> A.Node:
        token = self.tok
        if token.kind == "op" and token.value in A.COMPARISONS:
            cmp = self.advance().value
            amount_token = self.tok
            if amount_token.kind != "int" or amount_token.value < 0:
                raise self.fail("Expected a whole number of time units after the comparison",
                                "For example: occurs <= 24 hours before now")
            amount = int(self.advance().value)
            unit = self.unit()
            if not (self.tok.kind == "name" and str(self.tok.value).lower() in A.DIRECTIONS):
                raise self.fail("Expected 'before', 'after' or 'from' after the time unit",
                                "For example: <= 3 days before now")
            direction = str(self.advance().value).lower()
            return A.Relative(cmp, amount, unit, direction, self.time_ref())
        if self.is_kw("before") or self.is_kw("after"):
            direction = str(self.advance().value).lower()
            return A.Directional(direction, self.time_ref())
        if self.is_kw("between"):
            self.advance()
            start = self.time_ref()
            self.expect_kw("and")
            return A.Between(start, self.time_ref())
        self.accept_kw("on")
        return A.On(self.time_ref())

    def unit(self) -> str:
        token = self.tok
        if token.kind == "name" and str(token.value).lower() in A.UNIT_ALIASES:
            self.advance()
            return A.UNIT_ALIASES[str(token.value).lower()]
        raise self.fail(f"Expected a time unit but found {self.describe(token)}",
                        "Units: seconds, minutes, hours, days, weeks, months, years.")

    def time_ref(self) -> A.Node:
        token = self.tok
        if token.kind == "name":
            low = str(token.value).lower()
            if low in TIME_WORDS:
                self.advance()
                return {"now": A.Now, "today": A.Today, "yesterday": A.Yesterday,
                        "tomorrow": A.Tomorrow}[low]()
            if low in ("this", "last", "next") and self.peek().kind == "name" and \
                    str(self.peek().value).lower() in A.UNIT_ALIASES:
                self.advance()
                return A.Period(low, self.unit())
            if self.labels and any(token.value in scope for scope in self.labels) and \
                    not self.is_op(".", 1) and not self.is_op("(", 1):
                self.advance()
                return A.StepRef(str(token.value))
        if token.kind == "eof" or (token.kind == "op" and token.value == ")"):
            raise self.fail("Expected a time such as now, today, last month or date(2024, 1, 31)")
        return self.postfix()

    # --- CHAIN ----------------------------------------------------------------------------
    def chain(self) -> A.Chain:
        start = self.advance()
        self.expect_op("(")
        array = self.or_expr()
        self.expect_op(",", " after the event array of CHAIN")
        ts_field = self.expect_name("the timestamp field name (timestamp)")
        self.expect_op(",", " after the timestamp field of CHAIN")
        self.expect_op("[", " to open the list of CHAIN steps")
        steps: list[A.Step] = []
        labels: set[str] = set()
        self.labels.append(labels)
        try:
            while True:
                step = self.step(labels)
                steps.append(step)
                labels.add(step.label)
                if not self.accept_op(","):
                    break
        finally:
            self.labels.pop()
        self.expect_op("]", " to close the list of CHAIN steps")
        self.expect_op(")", " to close CHAIN")
        if len(steps) > MAX_CHAIN_STEPS:
            raise self.fail(f"A sequence may have at most {MAX_CHAIN_STEPS} events; "
                            f"this one has {len(steps)}",
                            "Split it into audiences and combine them with inSegment.", start)
        if all(s.negated for s in steps):
            raise self.fail("Every step of this sequence is negated",
                            "At least one step must be an event that happened.", start)
        return A.Chain(array, ts_field, tuple(steps))

    def step(self, seen: set[str]) -> A.Step:
        negated = self.accept_op("!")
        label_token = self.tok
        label = self.expect_name("a step label such as C0")
        if label in seen:
            raise self.fail(f"The step label {label} is used twice in this sequence", "",
                            label_token)
        self.expect_op(":", " after the step label")
        if self.accept_op("!"):
            negated = True
        self.expect_kw("what", "WHAT")
        self.expect_op("(")
        saved, self.no_in = self.no_in, 0
        what = self.expr()
        self.expect_op(")", " to close WHAT")
        clauses: dict[str, object] = {}
        while self.tok.kind == "name" and str(self.tok.value).lower() in ("when", "count",
                                                                           "where"):
            word_token = self.advance()
            word = str(word_token.value).lower()
            if word in clauses:
                raise self.fail(f"{word.upper()} appears twice in step {label}", "", word_token)
            self.expect_op("(")
            if word == "when":
                clauses[word] = self.time_clause()
            elif word == "count":
                if self.tok.kind != "int" or self.tok.value < 1:
                    raise self.fail("COUNT takes a whole number of at least 1")
                clauses[word] = int(self.advance().value)
            else:
                clauses[word] = self.expr()
            self.expect_op(")", f" to close {word.upper()}")
        self.no_in = saved
        return A.Step(label, what, clauses.get("when"), clauses.get("count"),
                      clauses.get("where"), negated)


def parse_text(text: str) -> A.Query:
    if not isinstance(text, str):
        raise PQLError("A PQL expression must be text", 1, 1, "", "")
    try:
        return Parser(text).parse()
    except PQLError:
        raise
    except RecursionError:
        raise PQLError("The expression is nested too deeply", 1, 1,
                       "Simplify it or split it into audiences.", text) from None
