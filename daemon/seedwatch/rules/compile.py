"""Syntax tree -> compiled tree of word matchers ("atoms") + one Aho-Corasick automaton.

Every item word is written into the automaton's haystack as a segment
``\\x01form\\x02stem\\x02[\\x03skeleton\\x03...]``, so one automaton key kind per matcher:

    exact form  \\x01form\\x02      prefix   \\x01prefix
    word forms  \\x02stem\\x02      translit \\x03skeleton\\x03

A query word in its ordinary (stemmed) form has two stem keys: its own stem, and the word
itself read as a stem. The second catches surnames the Russian stemmer cuts inconsistently
(Токаев -> тока, but Токаева -> токаев).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import ahocorasick

from seedwatch.config.model import RuleConfig, WatchlistConfig
from seedwatch.errors import ConfigError, RuleSyntaxError
from seedwatch.rules import textnorm
from seedwatch.rules.match import CompiledRule, Watchlist
from seedwatch.rules.nodes import And, Near, Node, Not, Or, Phrase, Word
from seedwatch.rules.parser import parse_query
from seedwatch.rules.tree import CAnd, CAtom, CNear, CNode, CNot, COr, CSeq, mask_of

log = logging.getLogger(__name__)

DEFAULT_MASK = mask_of("title", "text")
TRANSLIT_MIN_LETTERS = 4
_PREFIX_MIN = 2


def exact_key(word: str) -> str:
    return f"\x01{word}\x02"


def prefix_key(prefix: str) -> str:
    return f"\x01{prefix}"


def stem_key(stem: str) -> str:
    return f"\x02{stem}\x02"


def skeleton_key(skel: str) -> str:
    return f"\x03{skel}\x03"


def word_keys(word: str, written: str, *, exact: bool, prefix: bool) -> frozenset[str]:
    """Automaton keys for one folded query word; ``written`` is how the query spelled it."""
    if exact:
        return frozenset({exact_key(word)})
    if prefix and len(word) >= _PREFIX_MIN:
        return frozenset({prefix_key(word)})
    keys = {stem_key(textnorm.stem(word)), stem_key(word)}
    # Transliteration only for Latin names: capitalised in the query and long enough, so that
    # common words ("more", "pole") do not start matching Russian words (море, поле).
    letters = sum(ch.isalpha() for ch in word)
    if (
        textnorm.script_of(word) == "latn"
        and letters >= TRANSLIT_MIN_LETTERS
        and written[:1].isupper()
    ):
        skel = textnorm.skeleton(word)
        if skel:
            keys.add(skeleton_key(skel))
    return frozenset(keys)


class _Compiler:
    def __init__(self) -> None:
        self.atom_ids: dict[frozenset[str], int] = {}
        self.key_atoms: dict[str, set[int]] = {}

    def atom(self, keys: frozenset[str], mask: int) -> CAtom:
        # Rarity guess for trigger choice: longer words are rarer; a prefix is as common as a
        # word one letter shorter than it.
        rarity = min(
            len(k) - (2 if k.startswith("\x01") and not k.endswith("\x02") else 1) for k in keys
        )
        atom_id = self.atom_ids.get(keys)
        if atom_id is None:
            atom_id = len(self.atom_ids)
            self.atom_ids[keys] = atom_id
            for key in keys:
                self.key_atoms.setdefault(key, set()).add(atom_id)
        return CAtom(atom_id, mask, rarity)

    def compile(self, node: Node, mask: int) -> CNode:
        if isinstance(node, Word):
            return self.terms(node.text, exact=node.exact, prefix_last=node.prefix, mask=mask)
        if isinstance(node, Phrase):
            return self.terms(node.text, exact=node.exact, prefix_last=False, mask=mask)
        if isinstance(node, And):
            return CAnd(tuple(self.compile(c, mask) for c in node.children))
        if isinstance(node, Or):
            return COr(tuple(self.compile(c, mask) for c in node.children))
        if isinstance(node, Not):
            return CNot(self.compile(node.child, mask))
        if isinstance(node, Near):
            return CNear(
                self.compile(node.left, mask), self.compile(node.right, mask), node.distance
            )
        return self.compile(node.child, mask_of(node.field))

    def terms(self, text: str, *, exact: bool, prefix_last: bool, mask: int) -> CNode:
        src = unicodedata.normalize("NFC", text)
        found = [m for m in textnorm.TOKEN_RE.finditer(src) if textnorm.split_raw(m.group()).parts]
        elements: list[CNode] = []
        for i, m in enumerate(found):
            raw = m.group()
            tok = textnorm.split_raw(raw)
            # In a phrase, "word*" is a prefix too; in a bare word only the last token can be.
            is_prefix = (prefix_last and i == len(found) - 1) or src.startswith("*", m.end())
            last = len(tok.parts) - 1
            parts: list[CNode] = [
                self.atom(
                    word_keys(part, raw[a:b], exact=exact, prefix=is_prefix and j == last), mask
                )
                for j, (part, (a, b)) in enumerate(zip(tok.parts, tok.part_spans, strict=True))
            ]
            if tok.joined is None:
                elements.append(parts[0])
            else:
                joined = self.atom(word_keys(tok.joined, raw, exact=exact, prefix=is_prefix), mask)
                elements.append(COr((CSeq(tuple(parts)), joined)))
        if not elements:  # pragma: no cover - the parser rejects terms without words
            raise ValueError(f"no words in {text!r}")
        return elements[0] if len(elements) == 1 else CSeq(tuple(elements))

    def automaton(self) -> ahocorasick.Automaton | None:
        if not self.key_atoms:
            return None
        auto = ahocorasick.Automaton()
        for key, atoms in self.key_atoms.items():
            auto.add_word(key, tuple(sorted(atoms)))
        auto.make_automaton()
        return auto


_QUERY_LINE = re.compile(r"""^\s*(?:query|"query"|'query')\s*=\s*""")


def _file_column(rule: RuleConfig, path: str, query_column: int) -> int | None:
    """The column of the query's error in the TOML file, when the value is a one-line string
    written without escapes up to that point; None otherwise."""
    line_no = rule.location.line if rule.location else None
    if line_no is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not 1 <= line_no <= len(lines):
        return None
    line = lines[line_no - 1]
    m = _QUERY_LINE.match(line)
    if m is None:
        return None
    rest = line[m.end() :]
    if rest[:3] in ('"""', "'''") or rest[:1] not in ('"', "'"):
        return None
    start = m.end() + 1
    if line[start : start + query_column - 1] != rule.query[: query_column - 1]:
        return None
    return start + query_column


def _marked(query: str, column: int, context: int = 30) -> str:
    """The query around ``column`` with a ▶ before the offending character."""
    at = column - 1
    before = query[max(0, at - context) : at]
    after = query[at : at + context]
    return (
        ("…" if at > context else "")
        + before
        + "▶"
        + after
        + ("…" if at + context < len(query) else "")
    )


def compile_rule_tree(
    rules: Iterable[RuleConfig], aliases: dict[str, list[str]], path: str
) -> tuple[list[CompiledRule], _Compiler]:
    compiler = _Compiler()
    compiled: list[CompiledRule] = []
    for rule in rules:
        try:
            ast = parse_query(rule.query, aliases)
        except RuleSyntaxError as e:
            rule_path = rule.location.path if rule.location else path
            file_col = _file_column(rule, rule_path, e.column)
            raise ConfigError(
                e.message,
                path=rule_path,
                line=rule.location.line if rule.location else None,
                column=file_col if file_col is not None else e.column,
                key=f"rule.{rule.name}.query",
                hint=f"query column {e.column}: {_marked(rule.query, e.column)}",
            ) from e
        tree = compiler.compile(ast, DEFAULT_MASK)
        compiled.append(CompiledRule.build(rule, ast, tree))
    return compiled, compiler


def compile_watchlist(cfg: WatchlistConfig) -> Watchlist:
    """Parse and compile every rule of the watchlist; the first bad query raises ConfigError."""
    aliases: dict[str, list[str]] = {}
    for name, variants in cfg.aliases:
        aliases.setdefault(name, []).extend(variants)
    compiled, compiler = compile_rule_tree(cfg.rules, aliases, str(cfg.path))
    watchlist = Watchlist(tuple(compiled), compiler.automaton(), cfg)
    log.debug(
        "watchlist compiled rules=%d atoms=%d keys=%d path=%s",
        len(compiled),
        len(compiler.atom_ids),
        len(compiler.key_atoms),
        Path(cfg.path).name,
    )
    return watchlist
