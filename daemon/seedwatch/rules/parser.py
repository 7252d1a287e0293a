"""Query text -> syntax tree (see the package docstring for the language).

query    := or_expr
or_expr  := and_expr ( OR and_expr )*
and_expr := unary ( [AND] unary )*          adjacent terms are ANDed
unary    := NOT unary | near
near     := primary ( NEAR/n primary )*
primary  := FIELD: primary | ( or_expr ) | word | "phrase" | ="phrase"
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from seedwatch.errors import RuleSyntaxError
from seedwatch.rules import textnorm
from seedwatch.rules.nodes import (
    FIELDS,
    And,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Scope,
    Word,
    is_positional,
    matches_without_terms,
)

# Typographic quotes an analyst pastes from a word processor or a Russian text (« »).
_QUOTES = str.maketrans({c: '"' for c in "“”„‟«»″"})
_NEAR_RE = re.compile(r"near(?:/(.*))?", re.IGNORECASE)
_OPERATORS = {"AND", "OR", "NOT"}
_MAX_NEAR = 1000


@dataclass(frozen=True)
class _Tok:
    kind: str  # word | phrase | field | and | or | not | near | lparen | rparen | eof
    text: str
    column: int  # 1-based
    exact: bool = False
    distance: int = 0


def _error(message: str, column: int, query: str) -> RuleSyntaxError:
    return RuleSyntaxError(message, column=column, query=query)


def _lex(query: str) -> list[_Tok]:
    src = query.translate(_QUOTES)
    toks: list[_Tok] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        col = i + 1
        if ch.isspace():
            i += 1
        elif ch == "(":
            toks.append(_Tok("lparen", ch, col))
            i += 1
        elif ch == ")":
            toks.append(_Tok("rparen", ch, col))
            i += 1
        elif ch == '"' or (ch == "=" and i + 1 < n and src[i + 1] == '"'):
            exact = ch == "="
            start = i + 2 if exact else i + 1
            end = src.find('"', start)
            if end < 0:
                raise _error('unclosed quote: add the closing "', start, query)
            body = src[start:end]
            if not textnorm.words(body):
                raise _error("empty phrase: put words between the quotes", col, query)
            toks.append(_Tok("phrase", body, col, exact=exact))
            i = end + 1
        elif ch == ":":
            raise _error("':' must follow a field name such as title:", col, query)
        else:
            j = i
            while j < n and not src[j].isspace() and src[j] not in '()":':
                j += 1
            raw = src[i:j]
            if j < n and src[j] == ":":
                toks.append(_field_token(raw, col, query))
                i = j + 1
                continue
            toks.append(_word_token(raw, col, query))
            i = j
    toks.append(_Tok("eof", "", len(query.rstrip()) + 1))
    return toks


def _field_token(raw: str, col: int, query: str) -> _Tok:
    name = raw.casefold()
    if name in FIELDS:
        return _Tok("field", name, col)
    close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}:?)" if close else f" (fields: {', '.join(FIELDS)})"
    quote = "; quote the text to search for it" if not close else ""
    raise _error(f"unknown field '{raw}:'{hint}{quote}", col, query)


def _word_token(raw: str, col: int, query: str) -> _Tok:
    upper = raw.upper()
    if upper in _OPERATORS:
        return _Tok(upper.lower(), raw, col)
    near = _NEAR_RE.fullmatch(raw)
    if near:
        arg = near.group(1)
        if arg is None or not arg.isdigit():
            shown = "NEAR" if arg is None else raw
            raise _error(
                f"{shown} needs a distance in words, e.g. NEAR/5 "
                '(write "near" in quotes to search for the word)',
                col,
                query,
            )
        distance = int(arg)
        if distance > _MAX_NEAR:
            raise _error(f"NEAR distance {distance} is too large (at most {_MAX_NEAR})", col, query)
        return _Tok("near", raw, col, distance=distance)
    if raw[0] in textnorm.HYPHENS + textnorm.SPACE_DASHES and len(raw) > 1:
        # Search-engine habit: "-football" would silently mean "football" here.
        raise _error(f"'{raw}': '-' does not exclude a word here; write NOT {raw[1:]}", col, query)
    exact = raw.startswith("=")
    body = raw[1:] if exact else raw
    if not body:
        raise _error("'=' must be followed by a word or a \"phrase\"", col, query)
    star = body.find("*")
    if star >= 0 and star != len(body) - 1:
        raise _error(
            "'*' only works at the end of a word (a prefix such as terror*)",
            col + (1 if exact else 0) + star,
            query,
        )
    if not textnorm.words(body.rstrip("*")):
        raise _error(f"'{raw}' holds no letters or digits to search for", col, query)
    if star >= 0:
        if exact:
            raise _error("'=' (exact form) and '*' (prefix) cannot be combined", col, query)
        last = textnorm.words(body[:-1])[-1]
        if len(last) < 2:
            raise _error(
                f"prefix '{body}' is too short: give at least 2 letters before '*'", col, query
            )
    return _Tok("word", raw, col, exact=exact)


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.toks = _lex(query)
        self.pos = 0

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def fail(self, message: str, tok: _Tok) -> RuleSyntaxError:
        return _error(message, tok.column, self.query)

    def parse(self) -> Node:
        first = self.peek()
        if first.kind == "eof":
            raise self.fail("empty query: write at least one word", first)
        node = self.or_expr()
        tok = self.peek()
        if tok.kind == "rparen":
            raise self.fail("unmatched ')': there is no '(' to close", tok)
        if tok.kind != "eof":  # pragma: no cover - every other token starts a term
            raise self.fail(f"unexpected {tok.text!r}", tok)
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.peek().kind == "or":
            op = self.take()
            self.need_operand(op, "OR")
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children), _col(children[0]))

    def and_expr(self) -> Node:
        children = [self.unary()]
        while True:
            tok = self.peek()
            if tok.kind == "and":
                self.take()
                self.need_operand(tok, "AND")
            elif tok.kind not in ("word", "phrase", "lparen", "field", "not"):
                break
            children.append(self.unary())
        return children[0] if len(children) == 1 else And(tuple(children), _col(children[0]))

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "not":
            self.take()
            self.need_operand(tok, "NOT")
            return Not(self.unary(), tok.column)
        return self.near()

    def near(self) -> Node:
        left = self.primary()
        while self.peek().kind == "near":
            op = self.take()
            self.need_operand(op, op.text)
            right = self.primary()
            for side, node in (("left", left), ("right", right)):
                if not is_positional(node):
                    raise _error(
                        f"{op.text} measures the distance between words, phrases or OR-groups "
                        f"of them; the {side} side is an AND/NOT group",
                        _col(node),
                        self.query,
                    )
            left = Near(left, right, op.distance, _col(left))
        return left

    def need_operand(self, op: _Tok, name: str) -> None:
        nxt = self.peek()
        if nxt.kind in ("eof", "rparen", "and", "or", "near"):
            raise self.fail(f"{name} needs a term on its right", op)

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "word":
            return _word_node(tok)
        if tok.kind == "phrase":
            return Phrase(tok.text, tok.exact, tok.column)
        if tok.kind == "lparen":
            if self.peek().kind == "rparen":
                raise self.fail("empty parentheses: put a term inside", tok)
            inner = self.or_expr()
            close = self.peek()
            if close.kind != "rparen":
                raise self.fail("unclosed '(': add the matching ')'", tok)
            self.take()
            # A group is reported at its '(' (errors about the whole group point there).
            return replace(inner, column=tok.column) if isinstance(inner, And | Or) else inner
        if tok.kind == "field":
            nxt = self.peek()
            if nxt.kind not in ("word", "phrase", "lparen", "field"):
                raise self.fail(f'{tok.text}: needs a word, a "phrase" or a (group) after it', tok)
            return Scope(tok.text, self.primary(), tok.column)
        if tok.kind in ("and", "or", "near"):
            raise self.fail(f"{tok.text} needs a term on its left", tok)
        if tok.kind == "rparen":
            raise self.fail("unmatched ')': there is no '(' to close", tok)
        if tok.kind == "not":  # pragma: no cover - unary() consumes NOT before primary()
            raise self.fail("NOT cannot stand here", tok)
        raise self.fail("the query ends where a term was expected", tok)


def _word_node(tok: _Tok) -> Word:
    body = tok.text[1:] if tok.exact else tok.text
    prefix = body.endswith("*")
    return Word(body[:-1] if prefix else body, tok.exact, prefix, tok.column)


def _col(node: Node) -> int:
    return node.column


AliasIndex = dict[tuple[str, ...], tuple[str, tuple[str, ...]]]


def alias_index(aliases: Mapping[str, Sequence[str]] | None) -> AliasIndex:
    """Folded word sequence of every alias member -> (group name, all members)."""
    index: AliasIndex = {}
    for name, variants in (aliases or {}).items():
        members = tuple(dict.fromkeys([name, *variants]))
        for member in members:
            key = tuple(textnorm.words(member))
            if key and key not in index:
                index[key] = (name, members)
    return index


def _member_node(member: str, column: int) -> Node:
    if len(member.split()) > 1:
        return Phrase(member, False, column)
    return Word(member, False, False, column)


def expand_aliases(node: Node, index: AliasIndex) -> Node:
    """Replace each word or phrase that names an alias member by an OR of all members."""
    if not index:
        return node
    if isinstance(node, Word | Phrase):
        if node.exact or (isinstance(node, Word) and node.prefix):
            return node
        hit = index.get(tuple(textnorm.words(node.text)))
        if hit is None:
            return node
        name, members = hit
        return Or(tuple(_member_node(m, node.column) for m in members), node.column, alias=name)
    if isinstance(node, And):
        return And(tuple(expand_aliases(c, index) for c in node.children), node.column)
    if isinstance(node, Or):
        return Or(tuple(expand_aliases(c, index) for c in node.children), node.column, node.alias)
    if isinstance(node, Not):
        return Not(expand_aliases(node.child, index), node.column)
    if isinstance(node, Near):
        return Near(
            expand_aliases(node.left, index),
            expand_aliases(node.right, index),
            node.distance,
            node.column,
        )
    return Scope(node.field, expand_aliases(node.child, index), node.column)


def parse_query(text: str, aliases: Mapping[str, Sequence[str]] | None = None) -> Node:
    """Parse a watch-rule query; raise RuleSyntaxError with the 1-based column of the problem."""
    node = _Parser(text).parse()
    if matches_without_terms(node):
        raise _error(
            "the query would match items that contain none of its terms "
            "(NOT alone cannot start an alert; add a word to look for, e.g. terror* NOT football)",
            1,
            text,
        )
    return expand_aliases(node, alias_index(aliases))
