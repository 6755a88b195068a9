"""FHIRPath (N1, 2.0.0) text to a syntax tree: a tokenizer and a Pratt parser
following the grammar's precedence table.

http://hl7.org/fhirpath/N1/#grammar, https://hl7.org/fhir/R4/fhirpath.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from conformance.fhirpath._errors import FhirPathSyntaxError


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, datetime, time, constant, special, op, eof
    text: str
    pos: int
    delimited: bool = False  # a `backtick` identifier, never a keyword


_DATETIME = (
    r"@\d{4}(?:-\d{2}(?:-\d{2})?)?"
    r"(?:T(?:\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)?(?:Z|[+-]\d{2}:\d{2})?)?"
)
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<time>@T\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)
  | (?P<datetime>"""
    + _DATETIME
    + r""")
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<delimited>`(?:[^`\\]|\\.)*`)
  | (?P<constant>%(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\]|\\.)*`|'(?:[^'\\]|\\.)*'))
  | (?P<special>\$(?:this|index|total))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|!~|[.,()\[\]{}+\-*/|&=~<>])
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r"}
_ESCAPES["t"] = "\t"


def unescape(body: str) -> str:
    """The text of a string or delimited identifier, its escapes resolved."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise FhirPathSyntaxError(f"unknown escape \\{nxt}")
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FhirPathSyntaxError(f"unexpected {text[pos]!r} at {pos}", text)
        kind = match.lastgroup
        assert kind is not None
        value = match.group()
        if kind == "delimited":
            tokens.append(Token("ident", unescape(value[1:-1]), pos, delimited=True))
        elif kind != "ws":
            tokens.append(Token(kind, value, pos))
        pos = match.end()
    tokens.append(Token("eof", "", pos))
    return tokens


# The syntax tree. ``target`` None means the expression's current input.


@dataclass(frozen=True)
class Literal:
    value: Any  # bool, str, int, Decimal, a date/time text tagged by ``kind``, or a quantity
    kind: str = "value"  # value, date, time, quantity, empty


@dataclass(frozen=True)
class Member:
    target: Node | None
    name: str


@dataclass(frozen=True)
class Call:
    target: Node | None
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Index:
    target: Node
    index: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class TypeOp:
    op: str  # is, as
    operand: Node
    type_name: str  # possibly qualified: FHIR.Patient, System.String


@dataclass(frozen=True)
class Variable:
    name: str  # %name without the %


@dataclass(frozen=True)
class Special:
    name: str  # $this, $index, $total


Node = Literal | Member | Call | Index | Binary | Unary | TypeOp | Variable | Special

# Binding powers, loosest first (http://hl7.org/fhirpath/N1/#operator-precedence).
_INFIX: dict[str, int] = {
    "implies": 1,
    "or": 2,
    "xor": 2,
    "and": 3,
    "in": 4,
    "contains": 4,
    "=": 5,
    "~": 5,
    "!=": 5,
    "!~": 5,
    "<": 6,
    ">": 6,
    "<=": 6,
    ">=": 6,
    "|": 7,
    "is": 8,
    "as": 8,
    "+": 9,
    "-": 9,
    "&": 9,
    "*": 10,
    "/": 10,
    "div": 10,
    "mod": 10,
}
_UNARY_POWER = 11
_WORD_OPERATORS = frozenset(k for k in _INFIX if k.isalpha())
_CALENDAR_UNITS = frozenset(
    {
        "year",
        "years",
        "month",
        "months",
        "week",
        "weeks",
        "day",
        "days",
        "hour",
        "hours",
        "minute",
        "minutes",
        "second",
        "seconds",
        "millisecond",
        "milliseconds",
    }
)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, message: str, token: Token | None = None) -> FhirPathSyntaxError:
        where = (token or self.peek()).pos
        return FhirPathSyntaxError(f"{message} at {where}", self.text)

    def expect(self, text: str) -> Token:
        token = self.take()
        if token.kind != "op" or token.text != text:
            raise self.fail(f"expected {text!r}, found {token.text or 'the end'!r}", token)
        return token

    def parse(self) -> Node:
        node = self.expression(0)
        if self.peek().kind != "eof":
            raise self.fail(f"unexpected {self.peek().text!r}")
        return node

    def infix_operator(self) -> str | None:
        token = self.peek()
        if token.kind == "op" and token.text in _INFIX:
            return token.text
        if token.kind == "ident" and not token.delimited and token.text in _WORD_OPERATORS:
            return token.text
        return None

    def expression(self, min_power: int) -> Node:
        left = self.prefix()
        while True:
            op = self.infix_operator()
            if op is None:
                return left
            power = _INFIX[op]
            if power <= min_power:
                return left
            self.take()
            if op in ("is", "as"):
                left = TypeOp(op, left, self.type_specifier())
            else:
                left = Binary(op, left, self.expression(power))

    def prefix(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.text in ("+", "-"):
            self.take()
            return Unary(token.text, self.expression(_UNARY_POWER))
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token.kind == "op" and token.text == ".":
                self.take()
                name_token = self.take()
                if name_token.kind != "ident":
                    raise self.fail("expected a name after '.'", name_token)
                node = self.invocation(node, name_token.text)
            elif token.kind == "op" and token.text == "[":
                self.take()
                index = self.expression(0)
                self.expect("]")
                node = Index(node, index)
            else:
                return node

    def invocation(self, target: Node | None, name: str) -> Node:
        if self.peek().kind == "op" and self.peek().text == "(":
            self.take()
            args: list[Node] = []
            if not (self.peek().kind == "op" and self.peek().text == ")"):
                args.append(self.expression(0))
                while self.peek().kind == "op" and self.peek().text == ",":
                    self.take()
                    args.append(self.expression(0))
            self.expect(")")
            return Call(target, name, tuple(args))
        return Member(target, name)

    def term(self) -> Node:
        token = self.take()
        kind = token.kind
        if kind == "ident":
            if not token.delimited and token.text in ("true", "false"):
                return Literal(token.text == "true")
            return self.invocation(None, token.text)
        if kind == "string":
            return Literal(unescape(token.text[1:-1]))
        if kind == "number":
            number: int | Decimal = Decimal(token.text) if "." in token.text else int(token.text)
            unit = self.peek()
            if unit.kind == "string":
                self.take()
                return Literal((number, unescape(unit.text[1:-1])), "quantity")
            if unit.kind == "ident" and not unit.delimited and unit.text in _CALENDAR_UNITS:
                self.take()
                return Literal((number, unit.text), "quantity")
            return Literal(number)
        if kind == "datetime":
            return Literal(token.text[1:], "date")
        if kind == "time":
            return Literal(token.text[2:], "time")
        if kind == "constant":
            name = token.text[1:]
            if name[0] in "`'":
                name = unescape(name[1:-1])
            return Variable(name)
        if kind == "special":
            return Special(token.text)
        if kind == "op" and token.text == "(":
            node = self.expression(0)
            self.expect(")")
            return node
        if kind == "op" and token.text == "{":
            self.expect("}")
            return Literal(None, "empty")
        raise self.fail(f"unexpected {token.text or 'end of expression'!r}", token)

    def type_specifier(self) -> str:
        token = self.take()
        if token.kind != "ident":
            raise self.fail("expected a type name", token)
        name = token.text
        if self.peek().kind == "op" and self.peek().text == "." and self.peek(1).kind == "ident":
            self.take()
            name += "." + self.take().text
        return name


def parse(text: str) -> Node:
    """The syntax tree of one FHIRPath expression; FhirPathSyntaxError if it is not one."""
    return _Parser(text).parse()
