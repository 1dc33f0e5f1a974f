"""The AST as a `pql/json` tree (pql.md §11), losslessly.

Adobe's node types are used where Adobe has them: `fnApply` (operators and functions; a method's
receiver is its first parameter), `fieldLookup`, `literal`, `parameterReference`. Sift's other
nodes are written as `{"nodeType": "sift:<Node>", ...fields}`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from audiences.pql import ast as A
from audiences.pql.lexer import PQLError

NODE_TYPES = {cls.__name__: cls for cls in vars(A).values()
              if isinstance(cls, type) and issubclass(cls, A.Node) and cls is not A.Node}
IMPLICIT_ROOT = {"nodeType": "parameterReference", "position": 1}


def to_json(node: A.Node) -> dict:
    if isinstance(node, A.Query) and not node.params:
        return to_json(node.body)
    if isinstance(node, A.BinOp):
        return {"nodeType": "fnApply", "fnName": node.op,
                "params": [to_json(node.left), to_json(node.right)]}
    if isinstance(node, A.Not):
        return {"nodeType": "fnApply", "fnName": "not", "params": [to_json(node.operand)]}
    if isinstance(node, A.Call):
        params = [to_json(a) for a in node.args]
        out = {"nodeType": "fnApply", "fnName": node.name, "params": params}
        if node.obj is not None:
            out["params"] = [to_json(node.obj), *params]
            out["sift:method"] = True
        return out
    if isinstance(node, A.Field):
        return {"nodeType": "fieldLookup", "fieldName": node.name, "object": to_json(node.obj)}
    if isinstance(node, A.Name):
        return {"nodeType": "fieldLookup", "fieldName": node.name, "object": dict(IMPLICIT_ROOT)}
    if isinstance(node, A.Param):
        return {"nodeType": "parameterReference", "position": node.position, "sift:explicit": True}
    if isinstance(node, A.Literal):
        value = node.value
        kind = ("Boolean" if isinstance(value, bool) else "String" if isinstance(value, str)
                else "Integer" if isinstance(value, int) else "Double")
        return {"nodeType": "literal", "literalType": kind, "value": value}
    if isinstance(node, A.ListLit):
        return {"nodeType": "literal", "literalType": "List",
                "value": [to_json(i) for i in node.items]}
    out: dict[str, Any] = {"nodeType": "sift:" + type(node).__name__}
    for f in dataclasses.fields(node):
        out[f.name] = _encode(getattr(node, f.name))
    return out


def _encode(value):
    if isinstance(value, A.Node):
        return to_json(value)
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def from_json(tree: Any) -> A.Node:
    try:
        return _decode_node(tree)
    except PQLError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PQLError(f"Not a valid pql/json tree: {exc}", 1, 1) from None


def _decode_node(tree: Any) -> A.Node:
    if not isinstance(tree, dict) or "nodeType" not in tree:
        raise PQLError("Not a valid pql/json tree: a node needs a nodeType", 1, 1)
    kind = tree["nodeType"]
    if kind == "fnApply":
        name, params = tree["fnName"], [_decode_node(p) for p in tree.get("params", [])]
        if tree.get("sift:method"):
            return A.Call(params[0], name, tuple(params[1:]))
        if name == "not" and len(params) == 1:
            return A.Not(params[0])
        if name in A.COMPARISONS or name in ("and", "or", "in", "notIn", "like", "matches", "+",
                                             "-", "*", "/", "%"):
            left, right = params
            return A.BinOp(name, left, right)
        if name in ("equals", "contains", "exists", "get", "isNotNull", "isNull") and params:
            return A.Call(params[0], name, tuple(params[1:]))
        return A.Call(None, name, tuple(params))
    if kind == "fieldLookup":
        obj = tree["object"]
        if obj == IMPLICIT_ROOT:
            return A.Name(tree["fieldName"])
        return A.Field(_decode_node(obj), tree["fieldName"])
    if kind == "parameterReference":
        return A.Param(int(tree.get("position", 1)))
    if kind == "literal":
        literal_type = str(tree.get("literalType", "")).lower()
        if literal_type == "list":
            return A.ListLit(tuple(_decode_node(i) if isinstance(i, dict) else A.Literal(i)
                                   for i in tree["value"]))
        value = tree["value"]
        if literal_type == "double":
            value = float(value)
        elif literal_type == "integer":
            value = int(value)
        return A.Literal(value)
    if isinstance(kind, str) and kind.startswith("sift:") and kind[5:] in NODE_TYPES:
        cls = NODE_TYPES[kind[5:]]
        kwargs = {}
        for f in dataclasses.fields(cls):
            kwargs[f.name] = _decode_value(tree.get(f.name))
        return cls(**kwargs)
    raise PQLError(f"Unsupported pql/json node type {kind!r}", 1, 1)


def _decode_value(value):
    if isinstance(value, dict) and "nodeType" in value:
        return _decode_node(value)
    if isinstance(value, list):
        return tuple(_decode_value(v) for v in value)
    return value
