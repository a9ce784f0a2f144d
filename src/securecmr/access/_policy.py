"""Record-level policy expressions: tokenizer, recursive-descent parser and evaluators.

Grammar (keywords are lower case)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [op operand]
    op         := "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in"
    operand    := ref | literal | list | "(" expr ")"
    ref        := ("item" | "user") "." NAME ("." NAME)*   -- only one level is used
    literal    := STRING | NUMBER | "true" | "false" | "null"
    list       := "[" [literal ("," literal)*] "]"

Evaluation uses three-valued logic: a comparison that touches a missing attribute or mixes
incomparable types is *unknown*; ``not unknown`` stays unknown, and an unknown result denies.
So ``not (item.department in user.departments)`` never admits an item without a department.

Nothing is ever passed to :func:`eval`; the only names are ``item.<attr>`` and ``user.<attr>``
(``user.name``, ``user.role``, ``user.tenant`` and the user's attributes).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PolicyError

__all__ = ["AttributeTable", "Policy", "compile_policy"]

_MAX_POLICY_CHARS = 4096
_MAX_DEPTH = 64

# --------------------------------------------------------------------------- tokenizer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.)
    """,
    re.VERBOSE,
)

_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_ROOTS = {"item", "user"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num" | "str" | "name" | "kw" | "op" | "end"
    text: str
    pos: int


def _unescape(body: str, pos: int) -> str:
    out: list[str] = []
    i = 0
    simple = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in simple:
                raise PolicyError(f"unsupported escape sequence at character {pos + i + 1}")
            out.append(simple[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise PolicyError(
                f"unexpected character {text[pos]!r} at position {pos} in policy; "
                "use item.<attr>, user.<attr>, literals, comparisons, in, and, or, not"
            )
        kind = m.lastgroup or ""
        value = m.group()
        if kind == "name" and value in _KEYWORDS:
            kind = "kw"
        if kind != "ws":
            toks.append(_Tok(kind, value, pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Ref:
    root: str  # "item" | "user"
    name: str


@dataclass(frozen=True)
class Lit:
    value: Any  # str | int | float | bool | None | tuple of those


@dataclass(frozen=True)
class Cmp:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    arg: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Truth:
    """A bare operand used as a condition: true when the value is ``true`` (the boolean)."""

    arg: Node


Node = Ref | Lit | Cmp | Not | BoolOp | Truth

_CMP_OPS = {"==", "!=", "<", "<=", ">", ">=", "in", "not in"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.take()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = text or kind
            got = tok.text or "end of policy"
            raise PolicyError(f"expected {want!r} at position {tok.pos} in policy, found {got!r}")
        return tok

    def at_kw(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "kw" and tok.text == word

    def parse(self) -> Node:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise PolicyError(f"unexpected {tok.text!r} at position {tok.pos} in policy")
        return node

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise PolicyError("policy is nested too deeply")
        try:
            return self.or_expr()
        finally:
            self.depth -= 1

    def or_expr(self) -> Node:
        args = [self.and_expr()]
        while self.at_kw("or"):
            self.take()
            args.append(self.and_expr())
        return args[0] if len(args) == 1 else BoolOp("or", tuple(args))

    def and_expr(self) -> Node:
        args = [self.not_expr()]
        while self.at_kw("and"):
            self.take()
            args.append(self.not_expr())
        return args[0] if len(args) == 1 else BoolOp("and", tuple(args))

    def not_expr(self) -> Node:
        if self.at_kw("not"):
            self.take()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise PolicyError("policy is nested too deeply")
            try:
                return Not(self.not_expr())
            finally:
                self.depth -= 1
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        tok = self.peek()
        op: str | None = None
        if tok.kind == "op" and tok.text in _CMP_OPS:
            op = self.take().text
        elif tok.kind == "kw" and tok.text == "in":
            self.take()
            op = "in"
        elif tok.kind == "kw" and tok.text == "not" and self.toks[self.i + 1].text == "in":
            self.take()
            self.take()
            op = "not in"
        if op is None:
            return left if isinstance(left, (Cmp, Not, BoolOp, Truth)) else Truth(left)
        right = self.operand()
        for side in (left, right):
            if isinstance(side, (Cmp, Not, BoolOp, Truth)):
                raise PolicyError("a comparison compares values, not conditions; add parentheses")
        nxt = self.peek()
        if (nxt.kind == "op" and nxt.text in _CMP_OPS) or (nxt.kind == "kw" and nxt.text == "in"):
            raise PolicyError(f"chained comparison at position {nxt.pos} in policy; use 'and'")
        return Cmp(op, left, right)

    def operand(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text == "(":
            self.take()
            node = self.expr()
            self.expect("op", ")")
            return node
        if tok.kind == "op" and tok.text == "[":
            return self.list_literal()
        if tok.kind == "name":
            return self.ref()
        return Lit(self.literal())

    def ref(self) -> Ref:
        tok = self.take()
        if tok.text not in _ROOTS:
            raise PolicyError(
                f"unknown name {tok.text!r} at position {tok.pos} in policy; write item.<attr> or user.<attr>"
            )
        self.expect("op", ".")
        name = self.take()
        if name.kind not in ("name", "kw"):
            raise PolicyError(f"expected an attribute name after '{tok.text}.' at position {name.pos}")
        if self.peek().kind == "op" and self.peek().text == ".":
            raise PolicyError(
                f"nested attribute at position {self.peek().pos}; use one level: {tok.text}.<attr>"
            )
        return Ref(tok.text, name.text)

    def literal(self) -> Any:
        tok = self.take()
        if tok.kind == "num":
            text = tok.text
            if re.fullmatch(r"-?\d+", text):
                return int(text)
            value = float(text)
            if not math.isfinite(value):
                raise PolicyError(f"number out of range at position {tok.pos} in policy")
            return value
        if tok.kind == "str":
            return _unescape(tok.text[1:-1], tok.pos + 1)
        if tok.kind == "kw" and tok.text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[tok.text]
        got = tok.text or "end of policy"
        raise PolicyError(f"expected a value at position {tok.pos} in policy, found {got!r}")

    def list_literal(self) -> Lit:
        self.expect("op", "[")
        values: list[Any] = []
        if not (self.peek().kind == "op" and self.peek().text == "]"):
            values.append(self.literal())
            while self.peek().kind == "op" and self.peek().text == ",":
                self.take()
                values.append(self.literal())
        self.expect("op", "]")
        return Lit(tuple(values))


# --------------------------------------------------------------------------- scalar semantics

_MISSING = object()
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _norm(v: Any) -> Any:
    """Make an attribute value hashable and comparable: lists/sets become sorted-or-ordered tuples."""
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, (set, frozenset)):
        return tuple(sorted((_norm(x) for x in v), key=repr))
    if isinstance(v, dict):
        return tuple(sorted(((str(k), _norm(x)) for k, x in v.items()), key=repr))
    if isinstance(v, np.generic):
        return v.item()
    return v


def _eq(a: Any, b: Any) -> bool:
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _compare(op: str, a: Any, b: Any) -> bool | None:
    """One comparison; ``None`` means unknown (missing value or incomparable types)."""
    if a is _MISSING or b is _MISSING:
        return None
    if op in ("in", "not in"):
        if isinstance(b, tuple):
            found = any(_eq(a, x) for x in b)
        elif isinstance(b, str) and isinstance(a, str):
            found = a == b  # strings are atoms, never substring-matched
        elif b is None:
            return None
        else:
            found = _eq(a, b)
        return found if op == "in" else not found
    if op == "==":
        return _eq(a, b)
    if op == "!=":
        return not _eq(a, b)
    if (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)):
        return bool(_ORDER[op](a, b))
    return None


def _truth(v: Any) -> bool | None:
    if v is _MISSING or not isinstance(v, bool):
        return None
    return v


# --------------------------------------------------------------------------- vectorised columns


class AttributeTable:
    """Item attributes stored column-wise so a policy evaluates over many items at once.

    Each attribute is one column of integer codes into a small vocabulary of distinct values
    (code ``0`` = attribute absent, code ``c`` = ``vocab[c - 1]``). A comparison against a per-user
    constant is computed once per distinct value and gathered through the codes, so a million items
    cost one ``take``.
    Rows are appended in order; row ``i`` is the ``i``-th item handed to :meth:`append`.
    """

    def __init__(self) -> None:
        self._n = 0
        self._codes: dict[str, np.ndarray] = {}
        self._vocab: dict[str, list[Any]] = {}
        self._index: dict[str, dict[Any, int]] = {}

    def __len__(self) -> int:
        return self._n

    @property
    def names(self) -> list[str]:
        return sorted(self._codes)

    def _grow(self, name: str, capacity: int) -> np.ndarray:
        col = self._codes.get(name)
        if col is None:
            col = np.zeros(max(capacity, 16), dtype=np.intp)
            self._vocab[name] = []
            self._index[name] = {}
        elif col.shape[0] < capacity:
            new = np.zeros(max(capacity, 2 * col.shape[0]), dtype=np.intp)
            new[: col.shape[0]] = col
            col = new
        self._codes[name] = col
        return col

    def _code(self, name: str, value: Any) -> int:
        index = self._index[name]
        key = (type(value).__name__ if not _is_num(value) else "num", value)
        code = index.get(key)
        if code is None:
            self._vocab[name].append(value)
            code = len(self._vocab[name])
            index[key] = code
        return code

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append one attribute mapping per item."""
        start, end = self._n, self._n + len(rows)
        for name in {k for row in rows for k in row}:
            col = self._grow(name, end)
            for j, row in enumerate(rows):
                if name in row:
                    col[start + j] = self._code(name, _norm(row[name]))
        for name in self._codes:
            self._grow(name, end)
        self._n = end

    def append_column_codes(self, name: str, codes: np.ndarray, vocab: Sequence[Any]) -> None:
        """Bulk-load a categorical column for rows ``[n, n + len(codes))`` (used by benchmarks and
        bulk ingest); other columns are marked absent for those rows."""
        codes = np.asarray(codes, dtype=np.int32)
        if codes.ndim != 1 or (codes.size and (codes.min() < -1 or codes.max() >= len(vocab))):
            raise PolicyError("column codes must be a 1-d array of indices into vocab (or -1)")
        start, end = self._n, self._n + codes.shape[0]
        col = self._grow(name, end)
        remap = np.array([self._code(name, _norm(v)) for v in vocab] + [0], dtype=np.intp)
        col[start:end] = np.take(remap, codes)
        for other in self._codes:
            self._grow(other, end)
        self._n = end

    def codes(self, name: str) -> tuple[np.ndarray, list[Any]]:
        """The code column (length ``len(self)``, ``0`` = absent) and vocabulary of ``name``."""
        if name not in self._codes:
            return np.zeros(self._n, dtype=np.intp), []
        return self._codes[name][: self._n], self._vocab[name]

    def member_codes(self, name: str, op: str, c: Any) -> list[int] | None:
        """For ``==``/``!=``/``in``/``not in`` against a constant: the codes of the values that match
        (same semantics as the scalar evaluator), or None when that shortcut does not apply."""
        if op not in ("in", "not in", "==", "!=") or c is _MISSING or c is None:
            return None
        members = c if op in ("in", "not in") and isinstance(c, tuple) else (c,)
        index = self._index.get(name, {})
        try:
            found = [index.get(_hkey(x)) for x in members]
        except TypeError:
            return None
        return [code for code in found if code is not None]

    def take(self, rows: np.ndarray) -> AttributeTable:
        """A table of the given rows only (sharing the vocabularies), e.g. search candidates."""
        rows = np.asarray(rows, dtype=np.intp)
        sub = AttributeTable()
        sub._n = int(rows.shape[0])
        sub._codes = {name: np.take(col[: self._n], rows) for name, col in self._codes.items()}
        sub._vocab = self._vocab
        sub._index = self._index
        return sub

    def value(self, name: str, row: int) -> Any:
        code = int(self._codes[name][row]) if name in self._codes else 0
        return _MISSING if code == 0 else self._vocab[name][code - 1]

    def row(self, i: int) -> dict[str, Any]:
        return {n: v for n in self._codes if (v := self.value(n, i)) is not _MISSING}


# --------------------------------------------------------------------------- compiled policy

_Tri = tuple[np.ndarray, np.ndarray]  # (true mask, false mask); neither = unknown


def _user_value(user: Mapping[str, Any], name: str) -> Any:
    return _norm(user[name]) if name in user else _MISSING


class Policy:
    """A parsed, validated policy. Build with :func:`compile_policy`; never evaluates Python code."""

    __slots__ = ("_ast", "source")

    def __init__(self, source: str, ast: Node) -> None:
        self.source = source
        self._ast = ast

    def __repr__(self) -> str:
        return f"Policy({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    @property
    def item_attributes(self) -> set[str]:
        """The item attributes the policy reads."""
        out: set[str] = set()

        def walk(n: Node) -> None:
            if isinstance(n, Ref) and n.root == "item":
                out.add(n.name)
            elif isinstance(n, Cmp):
                walk(n.left)
                walk(n.right)
            elif isinstance(n, (Not, Truth)):
                walk(n.arg)
            elif isinstance(n, BoolOp):
                for a in n.args:
                    walk(a)

        walk(self._ast)
        return out

    # -- one item
    def allows(self, item: Mapping[str, Any], user: Mapping[str, Any]) -> bool:
        """True only when the policy is definitely true for this item and user."""
        return self._eval1(self._ast, item, user) is True

    def _value1(self, node: Node, item: Mapping[str, Any], user: Mapping[str, Any]) -> Any:
        if isinstance(node, Lit):
            return node.value
        if isinstance(node, Ref):
            src = item if node.root == "item" else user
            return _norm(src[node.name]) if node.name in src else _MISSING
        raise PolicyError("internal: condition used as a value")  # parser prevents this

    def _eval1(self, node: Node, item: Mapping[str, Any], user: Mapping[str, Any]) -> bool | None:
        if isinstance(node, Cmp):
            return _compare(
                node.op, self._value1(node.left, item, user), self._value1(node.right, item, user)
            )
        if isinstance(node, Not):
            v = self._eval1(node.arg, item, user)
            return None if v is None else not v
        if isinstance(node, Truth):
            return _truth(self._value1(node.arg, item, user))
        if isinstance(node, BoolOp):
            vals = [self._eval1(a, item, user) for a in node.args]
            if node.op == "and":
                if any(v is False for v in vals):
                    return False
                return True if all(v is True for v in vals) else None
            if any(v is True for v in vals):
                return True
            return False if all(v is False for v in vals) else None
        raise PolicyError("internal: value used as a condition")

    # -- many items
    def mask(self, table: AttributeTable, user: Mapping[str, Any]) -> np.ndarray:
        """Boolean array over the table's rows: True where the policy admits the item."""
        true, _ = self._evaln(self._ast, table, user, False)
        return true

    def _evaln(self, node: Node, table: AttributeTable, user: Mapping[str, Any], need_f: bool = True) -> _Tri:
        """(true mask, false mask); when ``need_f`` is False the second mask is meaningless."""
        n = len(table)
        if isinstance(node, Cmp):
            return self._cmpn(node, table, user, need_f)
        if isinstance(node, Not):
            t, f = self._evaln(node.arg, table, user, True)
            return f, t
        if isinstance(node, Truth):
            return self._unary(node.arg, table, user, _truth)
        if isinstance(node, BoolOp):
            parts = [self._evaln(a, table, user, need_f) for a in node.args]
            t, f = parts[0]
            t = t.copy()
            f = f.copy() if need_f else t
            for pt, pf in parts[1:]:
                if node.op == "and":
                    t &= pt
                    if need_f:
                        f |= pf
                else:
                    t |= pt
                    if need_f:
                        f &= pf
            return t, f
        z = np.zeros(n, dtype=bool)
        return z, z.copy()

    def _unary(
        self, node: Node, table: AttributeTable, user: Mapping[str, Any], fn: Callable[[Any], bool | None]
    ) -> _Tri:
        n = len(table)
        if isinstance(node, Ref) and node.root == "item":
            codes, vocab = table.codes(node.name)
            return _gather(codes, [fn(v) for v in vocab])
        v = fn(self._value1(node, {}, user) if not isinstance(node, Ref) else _user_value(user, node.name))
        return _const(n, v)

    def _cmpn(self, node: Cmp, table: AttributeTable, user: Mapping[str, Any], need_f: bool = True) -> _Tri:
        n = len(table)
        left = node.left if isinstance(node.left, Ref) and node.left.root == "item" else None
        right = node.right if isinstance(node.right, Ref) and node.right.root == "item" else None

        def const(side: Node) -> Any:
            if isinstance(side, Ref):
                return _user_value(user, side.name)
            return self._value1(side, {}, user)

        if left is None and right is None:
            return _const(n, _compare(node.op, const(node.left), const(node.right)))
        if left is not None and right is None:
            codes, vocab = table.codes(left.name)
            c = const(node.right)
            member_codes = table.member_codes(left.name, node.op, c)
            if member_codes is not None:  # equality/membership: set the few matching codes directly
                positive = node.op in ("in", "==")
                hit = np.zeros(len(vocab) + 1, dtype=bool)
                hit[member_codes] = True
                lut_t = hit if positive else ~hit
                lut_t[0] = False
                t = np.take(lut_t, codes)
                if not need_f:
                    return t, t
                lut_f = ~hit if positive else hit.copy()
                lut_f[0] = False
                return t, np.take(lut_f, codes)
            return _gather(codes, _compare_vocab(node.op, vocab, c), need_f)
        if right is not None and left is None:
            codes, vocab = table.codes(right.name)
            c = const(node.left)
            return _gather(codes, [_compare(node.op, c, v) for v in vocab], need_f)
        # item vs item: row by row (rare)
        t = np.zeros(n, dtype=bool)
        f = np.zeros(n, dtype=bool)
        lname = left.name if left is not None else ""
        rname = right.name if right is not None else ""
        for i in range(n):
            r = _compare(node.op, table.value(lname, i), table.value(rname, i))
            if r is True:
                t[i] = True
            elif r is False:
                f[i] = True
        return t, f


def _hkey(v: Any) -> tuple[str, Any]:
    return ("num", v) if _is_num(v) else (type(v).__name__, v)


def _compare_vocab(op: str, vocab: list[Any], c: Any) -> list[bool | None]:
    """``_compare(op, v, c)`` for every distinct value ``v``; membership tests use a hash set."""
    if op in ("in", "not in", "==", "!=") and c is not _MISSING and c is not None:
        members = c if op in ("in", "not in") and isinstance(c, tuple) else (c,)
        try:
            keys = {_hkey(x) for x in members}
        except TypeError:
            keys = None
        if keys is not None:
            positive = op in ("in", "==")
            out: list[bool | None] = []
            for v in vocab:
                if v is None or isinstance(v, tuple):
                    out.append(_compare(op, v, c))
                else:
                    out.append((_hkey(v) in keys) == positive)
            return out
    return [_compare(op, v, c) for v in vocab]


def _const(n: int, v: bool | None) -> _Tri:
    return np.full(n, v is True, dtype=bool), np.full(n, v is False, dtype=bool)


def _gather(codes: np.ndarray, results: list[bool | None], need_f: bool = True) -> _Tri:
    """Map per-vocabulary results onto rows; code ``0`` (absent) is unknown."""
    lut_t = np.array([False] + [r is True for r in results], dtype=bool)
    t = np.take(lut_t, codes)
    if not need_f:
        return t, t  # the false mask is not used by the caller
    lut_f = np.array([False] + [r is False for r in results], dtype=bool)
    return t, np.take(lut_f, codes)


def compile_policy(source: str) -> Policy:
    """Parse ``source`` into a :class:`Policy`, or raise :class:`~securecmr.errors.PolicyError`.

    >>> compile_policy("item.department in user.departments and item.sensitivity <= user.clearance")
    Policy('item.department in user.departments and item.sensitivity <= user.clearance')
    """
    if not isinstance(source, str):
        raise PolicyError(f"a policy must be a string, got {type(source).__name__}")
    if not source.strip():
        raise PolicyError("empty policy; pass policy=None for no record-level policy")
    if len(source) > _MAX_POLICY_CHARS:
        raise PolicyError(f"policy longer than {_MAX_POLICY_CHARS} characters")
    ast = _Parser(source).parse()
    if isinstance(ast, Truth) and isinstance(ast.arg, Lit) and not isinstance(ast.arg.value, bool):
        raise PolicyError("a policy must be a condition, e.g. item.site in user.sites")
    return Policy(source, ast)
