"""`{{ expression|pql_highlight }}`: PQL with keywords, functions, strings and numbers marked up
from the engine's own tokenizer (so highlighting never disagrees with the parser)."""

from __future__ import annotations

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from audiences.pql.lexer import PQLError, tokenize

register = template.Library()

KEYWORDS = frozenset("""and or not in notin like matches occurs on between select exists forall
from where over let sum average min max if chain what when count before after now today
yesterday tomorrow this last next true false null""".split())


def _css(tokens, index: int) -> str:
    token = tokens[index]
    if token.kind == "string":
        return "str"
    if token.kind in ("int", "float"):
        return "num"
    if token.kind == "op":
        return "op"
    if token.kind == "name":
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if str(token.value).lower() in KEYWORDS:
            return "kw"
        if following is not None and following.kind == "op" and following.value == "(":
            return "fn"
    return ""


@register.filter
def pql_highlight(text: str) -> SafeString:
    text = text or ""
    try:
        tokens = [t for t in tokenize(text) if t.kind != "eof"]
    except PQLError:
        return mark_safe(escape(text))  # unreadable PQL is shown as plain text
    out, cursor = [], 0
    for i, token in enumerate(tokens):
        out.append(escape(text[cursor:token.pos]))
        piece = escape(text[token.pos:token.end])
        css = _css(tokens, i)
        out.append(f'<span class="{css}">{piece}</span>' if css else piece)
        cursor = token.end
    out.append(escape(text[cursor:]))
    return mark_safe("".join(out))


@register.filter
def query_type_label(value: str) -> str:
    """`single_event` -> "Single event" (the classifier's query types, for people)."""
    return (value or "").replace("_", " ").capitalize()
