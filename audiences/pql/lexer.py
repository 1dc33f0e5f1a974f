"""Tokens of PQL, and the one error type every bad input raises."""

from __future__ import annotations

from dataclasses import dataclass


class PQLError(ValueError):
    """Bad PQL, with where (1-based line and column) and what a marketer can do about it."""

    def __init__(self, message: str, line: int = 1, column: int = 1, hint: str = "",
                 text: str = "") -> None:
        self.message = message
        self.line = line
        self.column = column
        self.hint = hint
        self.text = text
        super().__init__(self.__str__())

    @property
    def excerpt(self) -> str:
        """The offending line with a caret under the column."""
        lines = self.text.splitlines() or [""]
        if not 1 <= self.line <= len(lines):
            return ""
        source = lines[self.line - 1]
        return f"{source}\n{' ' * (self.column - 1)}^"

    def __str__(self) -> str:
        out = f"{self.message} (line {self.line}, column {self.column})"
        if self.excerpt:
            out += "\n" + self.excerpt
        if self.hint:
            out += f"\nHint: {self.hint}"
        return out

    def to_dict(self) -> dict:
        return {"message": self.message, "line": self.line, "column": self.column,
                "hint": self.hint, "excerpt": self.excerpt}


@dataclass(frozen=True)
class Token:
    kind: str  # name, string, int, float, op, param, eof
    value: object
    pos: int
    end: int


DIGITS = frozenset("0123456789")
OPERATORS = ("=>", "<=", ">=", "!=", "==", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")",
             "[", "]", "{", "}", ",", ".", ":", "!", "^")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n\f\v\u00a0":
            i += 1
            continue
        start = i
        if ch == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise error_at(text, start, "This string is never closed",
                                   'Add the closing double quote (").')
                c = text[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise error_at(text, i, "A backslash ends the text",
                                       'Escape a backslash as "\\\\".')
                    nxt = text[i + 1]
                    if nxt == "u" and i + 6 <= n and all(
                            c in "0123456789abcdefABCDEF" for c in text[i + 2:i + 6]):
                        buf.append(chr(int(text[i + 2:i + 6], 16)))
                        i += 6
                        continue
                    simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f",
                              '"': '"', "\\": "\\", "/": "/"}
                    # An unknown escape keeps its backslash: "\\w" and "\w" both reach a
                    # regex as \w.
                    buf.append(simple.get(nxt, "\\" + nxt))
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                buf.append(c)
                i += 1
            tokens.append(Token("string", "".join(buf), start, i))
            continue
        if ch in "\u201c\u201d\u2018\u2019'":
            raise error_at(text, i, "Only straight double quotes start a string",
                           f'Replace {ch} with ".')
        if ch in DIGITS or (ch == "." and i + 1 < n and text[i + 1] in DIGITS):
            j = i
            while j < n and text[j] in DIGITS:
                j += 1
            is_float = False
            if j < n and text[j] == "." and j + 1 < n and text[j + 1] in DIGITS:
                is_float = True
                j += 1
                while j < n and text[j] in DIGITS:
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and text[k] in DIGITS:
                    is_float = True
                    j = k
                    while j < n and text[j] in DIGITS:
                        j += 1
            raw = text[i:j]
            if j < n and (text[j].isalpha() or text[j] == "_"):
                raise error_at(text, j, f"Unexpected character {text[j]!r} after number {raw}",
                               "If this was meant to be text, check that every string before "
                               "it has its closing double quote.")
            tokens.append(Token("float" if is_float else "int",
                                float(raw) if is_float else int(raw), start, j))
            i = j
            continue
        if ch.isalpha() or ch == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            tokens.append(Token("name", text[i:j], start, j))
            i = j
            continue
        if ch == "$":
            j = i + 1
            while j < n and text[j] in DIGITS:
                j += 1
            if j == i + 1:
                raise error_at(text, i, "$ must be followed by a parameter number, like $1")
            tokens.append(Token("param", int(text[i + 1:j]), start, j))
            i = j
            continue
        if text.startswith(("_{TENANT_ID}", "{TENANT_ID}", "<OrgID>"), i):
            raise error_at(text, i, "This is a documentation placeholder, not PQL",
                           "Replace it with your own tenant or organization id.")
        if ch == "@" and text.startswith("@{", i):
            raise error_at(text, i, "Context references (@{...}) are not supported in audiences",
                           "They belong to Journey Optimizer decision rules.")
        for op in OPERATORS:
            if text.startswith(op, i):
                tokens.append(Token("op", "=" if op == "==" else op, start, i + len(op)))
                i += len(op)
                break
        else:
            raise error_at(text, i, f"Unexpected character {ch!r}")
    tokens.append(Token("eof", None, n, n))
    return tokens


def line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    last_newline = text.rfind("\n", 0, pos)
    return line, pos - last_newline


def error_at(text: str, pos: int, message: str, hint: str = "") -> PQLError:
    line, column = line_col(text, pos)
    return PQLError(message, line, column, hint, text)
