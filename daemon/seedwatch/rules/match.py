"""Matching an item against a compiled watchlist: one automaton scan, then the rules it woke.

    item fields --TOKEN_RE--> raw words --(cache | automaton over new words)--> atom hits
        --atom->rules index--> candidate rules --filters, tree--> Match(rule, terms, channels)

The automaton only sees words this watchlist has not met before: per raw word the atoms it
hits are cached (bounded), so a steady stream of news mostly costs two set operations per
item; highlight positions are located only for the rules that matched.
"""

from __future__ import annotations

import hashlib
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate, islice
from typing import Any

from seedwatch.config.model import RuleConfig, WatchlistConfig
from seedwatch.rules import textnorm
from seedwatch.rules.nodes import Node
from seedwatch.rules.tree import FIELD_BITS, CNode, Span
from seedwatch.types import Item, Match, Score

# Position gap between separate strings of one field (tags, feed name and URL): larger than
# any NEAR distance, so no phrase or NEAR spans two tags.
_GAP = 10_000
# Words remembered with their hits. News vocabularies are long-tailed (names, numbers,
# typos), so a cache this size already hits most words of an item; a larger one mostly keeps
# words never seen again, at ~200 bytes each in the daemon's memory.
_CACHE_MAX = 60_000

# A raw word's hits: ((first, last, atoms), ...), part positions relative to the word.
_Hits = tuple[tuple[int, int, tuple[int, ...]], ...]


@lru_cache(maxsize=_CACHE_MAX)
def segment(word: str) -> str:
    """The haystack text for one folded word (see compile.py for the key layout)."""
    seg = f"\x01{word}\x02{textnorm.stem(word)}\x02"
    if textnorm.script_of(word) == "cyrl":
        skels = {
            textnorm.skeleton(textnorm.romanize(word)),
            textnorm.skeleton(textnorm.romanize(textnorm.stem(word))),
        }
        seg += "".join(f"\x03{s}\x03" for s in sorted(skels) if s)
    return seg


class _WordCaches:
    """What the automaton found per raw word. Only words with hits get an entry in ``hot``:
    per item, set operations (in C) pick the few words that matter among its ~100 distinct
    ones, instead of a dict lookup per word in Python."""

    __slots__ = ("atoms", "hot", "hot_keys", "known", "npos", "npos_keys", "wakes")

    def __init__(self) -> None:
        self.known: set[str] = set()  # raw words already scanned
        self.hot: dict[str, _Hits] = {}  # raw word -> hits, for words some rule looks for
        self.hot_keys: set[str] = set()
        self.wakes: dict[str, frozenset[int]] = {}  # raw word -> rules its atoms trigger
        self.atoms: dict[str, frozenset[int]] = {}  # raw word -> every atom it hits
        self.npos: dict[str, int] = {}  # raw words taking other than one position
        self.npos_keys: set[str] = set()


@dataclass(frozen=True, eq=False)
class CompiledRule:
    """A watch rule ready to match: its config, syntax tree and compiled tree."""

    name: str
    query: str
    channels: tuple[str, ...]
    config: RuleConfig
    ast: Node
    tree: CNode = field(repr=False)
    atoms: frozenset[int] = field(repr=False)
    required: frozenset[int] = field(repr=False, default=frozenset())
    min_score: float | None = None
    topics: frozenset[str] = frozenset()
    feeds: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()

    @classmethod
    def build(cls, rule: RuleConfig, ast: Node, tree: CNode) -> CompiledRule:
        return cls(
            name=rule.name,
            query=rule.query,
            channels=rule.channels,
            config=rule,
            ast=ast,
            tree=tree,
            atoms=frozenset(tree.atoms()),
            required=tree.required(),
            min_score=rule.min_score,
            topics=frozenset(t.casefold() for t in rule.topics),
            feeds=frozenset(f.casefold() for f in rule.feeds),
            tags=frozenset(t.casefold() for t in rule.tags),
        )

    def accepts(
        self,
        item: Item,
        score: Score | None,
        feed_name: str,
        feed_url: str,
        feed_tags: Sequence[str] = (),
    ) -> bool:
        """The rule's filters (min_score, topics, feeds, tags), before its query is looked at.
        ``tags`` accepts the item's own categories and its feed's tags (feeds.toml). Without
        a score, only the filters that need none."""
        if score is not None and not self.accepts_score(score):
            return False
        if self.feeds and not (
            feed_name.casefold() in self.feeds or feed_url.casefold() in self.feeds
        ):
            return False
        return not self.tags or any(t.casefold() in self.tags for t in (*item.tags, *feed_tags))

    def accepts_score(self, score: Score) -> bool:
        """The filters on the classifier's verdict (min_score, topics)."""
        if self.min_score is not None and score.score < self.min_score:
            return False
        return not self.topics or score.topic.casefold() in self.topics


class Watchlist:
    """Compiled watch rules; ``match`` is pure and safe to call from several threads."""

    def __init__(
        self,
        rules: tuple[CompiledRule, ...],
        automaton: Any | None,
        source: WatchlistConfig | None = None,
    ) -> None:
        self.rules = rules
        self.source = source  # what a worker process compiles its copy from
        # Names the rules' content (not the file's name or time), equal in every process that
        # compiles the same source: another process's matches are taken as they are only
        # when the versions agree (see accept).
        self.version = (
            hashlib.sha256(repr((source.rules, source.aliases)).encode()).hexdigest()[:16]
            if source is not None
            else ""
        )
        self._automaton = automaton
        self._by_name = {rule.name: rule for rule in rules}
        atom_rules: dict[int, list[int]] = {}
        mask = 0
        for i, rule in enumerate(rules):
            mask |= rule.tree.fields()
            # A rule without a trigger (e.g. NOT NOT a) waits on all its atoms: it is false
            # when none is hit, because the parser refuses queries that match without terms.
            trigger = rule.tree.trigger()
            for atom in trigger[0] if trigger is not None else rule.atoms:
                atom_rules.setdefault(atom, []).append(i)
        self._atom_rules = {a: tuple(r) for a, r in atom_rules.items()}
        self._mask = mask
        self._caches = _WordCaches()

    def __repr__(self) -> str:
        return f"Watchlist({len(self.rules)} rules)"

    def _sources(self, item: Item, feed_name: str, feed_url: str) -> list[tuple[int, list[str]]]:
        wanted = {
            "title": [item.title],
            "text": [item.text],
            "url": [item.url or ""],
            "feed": [feed_name, feed_url],
            "tag": list(item.tags),
        }
        return [
            (bit, [unicodedata.normalize("NFC", s) for s in wanted[name] if s])
            for name, bit in FIELD_BITS.items()
            if (self._mask >> bit) & 1
        ]

    def _scan(self, vocab: set[str], missing: set[str]) -> _WordCaches:
        """Run the automaton over words not met before and remember what each one hits.
        Returns the caches that now know every word of ``vocab``."""
        c = self._caches
        if len(c.known) + len(missing) > _CACHE_MAX:
            # Replaced, never cleared in place: a thread holding the old caches still sees
            # them whole. The new ones start with this item's words.
            c = _WordCaches()
            self._caches = c
            missing = vocab
        known, hot, hot_keys, npos, npos_keys = c.known, c.hot, c.hot_keys, c.npos, c.npos_keys
        atom_rules = self._atom_rules
        order = list(missing)
        words: list[str] = []
        owners: list[tuple[int, int, int]] = []  # (index in order, first part, last part)
        splits = [textnorm.split_raw(raw) for raw in order]
        for ri, tok in enumerate(splits):
            for j, part in enumerate(tok.parts):
                words.append(part)
                owners.append((ri, j, j))
            if tok.joined is not None:
                words.append(tok.joined)
                owners.append((ri, 0, len(tok.parts) - 1))
        found: dict[int, set[int]] = {}
        if self._automaton is not None and words:
            segs = [segment(w) for w in words]
            starts = list(accumulate((len(s) for s in segs[:-1]), initial=0))
            for end, atoms in self._automaton.iter("".join(segs)):
                found.setdefault(bisect_right(starts, end) - 1, set()).update(atoms)
        per_raw: dict[int, list[tuple[int, int, tuple[int, ...]]]] = {}
        for wi, atoms in found.items():
            ri, first, last = owners[wi]
            per_raw.setdefault(ri, []).append((first, last, tuple(sorted(atoms))))
        # Entries go in before the word is marked known: a reader that sees it known finds them.
        for ri, hits in per_raw.items():
            raw = order[ri]
            hot[raw] = tuple(hits)
            c.atoms[raw] = frozenset(atom for _, _, atoms in hits for atom in atoms)
            c.wakes[raw] = frozenset(
                r for _, _, atoms in hits for atom in atoms for r in atom_rules.get(atom, ())
            )
            hot_keys.add(raw)
        for raw, tok in zip(order, splits, strict=True):
            if len(tok.parts) != 1:
                npos[raw] = len(tok.parts)
                npos_keys.add(raw)
        known.update(order)
        return c

    def match(
        self,
        item: Item,
        score: Score | None,
        *,
        feed_name: str = "",
        feed_url: str = "",
        feed_tags: Sequence[str] = (),
    ) -> tuple[Match, ...]:
        """Every rule the item satisfies, in watchlist order, with the matched terms.

        With ``score`` None, the rules' score filters (min_score, topics) are left for
        ``accept``: the parse workers match before the daemon has scored the item."""
        if not self.rules or self._automaton is None:
            return ()
        sources = self._sources(item, feed_name, feed_url)
        tokenized = [(bit, [textnorm.tokens(s) for s in strings]) for bit, strings in sources]
        vocab: set[str] = set()
        for _, lists in tokenized:
            for raws in lists:
                vocab.update(raws)
        c = self._caches
        missing = vocab - c.known
        if missing:
            c = self._scan(vocab, missing)
        hot_words = vocab & c.hot_keys
        if not hot_words:
            return ()  # the usual case: no word of the item is in any rule
        wakes = c.wakes
        candidates: set[int] = set().union(*[wakes[raw] for raw in hot_words])
        if not candidates:
            return ()  # its words only feed rules' other terms (e.g. the common half of an AND)
        atoms_of = c.atoms
        present: set[int] = set().union(*[atoms_of[raw] for raw in hot_words])
        multi = vocab & c.npos_keys
        hits = _LazyHits(tokenized, c.hot, hot_words, c.npos, multi)
        matched: list[tuple[CompiledRule, list[Span]]] = []
        for i in sorted(candidates):
            rule = self.rules[i]
            # Most woken rules lack some other term (the other half of an AND): found out
            # from the atoms alone, before any position is computed.
            if not rule.required <= present or not rule.tree.possible(present):
                continue
            if not rule.accepts(item, score, feed_name, feed_url, feed_tags):
                continue
            spans = rule.tree.eval(hits)
            if spans is not None:
                matched.append((rule, spans))
        if not matched:
            return ()
        surfaces = _Surfaces(sources, [sp for _, spans in matched for sp in spans], multi)
        return tuple(
            Match(rule=rule.name, terms=surfaces.terms(spans), channels=rule.channels)
            for rule, spans in matched
        )

    def accept(self, found: Sequence[Match], score: Score) -> tuple[Match, ...]:
        """Of the matches ``match`` found without a score (by this watchlist or a copy of
        the same version), those whose rule's score filters the item passes."""
        by_name = self._by_name
        return tuple(m for m in found if by_name[m.rule].accepts_score(score))


class _LazyHits:
    """Atom -> spans for one item, each atom's list built the first time a rule asks for it.

    An item wakes a few rules but its words hit many atoms (the other halves of ANDs, words of
    rules its filters reject); building spans only for the atoms evaluated saves most of it.
    """

    __slots__ = ("_built", "_by_atom", "_fields", "_hot", "_multi", "_npos", "_tokenized", "_words")

    def __init__(
        self,
        tokenized: list[tuple[int, list[list[str]]]],
        hot: dict[str, _Hits],
        words: set[str],
        npos: dict[str, int],
        multi: set[str],
    ) -> None:
        self._tokenized = tokenized
        self._hot = hot  # the watchlist's cache: read only the item's ``words``
        self._words = words
        self._npos = npos
        self._multi = multi
        self._built: dict[int, list[Span] | None] = {}
        self._fields: list[tuple[int, dict[str, list[int]]]] | None = None
        self._by_atom: dict[int, list[tuple[str, int, int]]] | None = None

    def _sources(self) -> dict[int, list[tuple[str, int, int]]]:
        by_atom: dict[int, list[tuple[str, int, int]]] = {}
        hot = self._hot
        for raw in self._words:
            for a, b, atoms in hot[raw]:
                for atom in atoms:
                    src = by_atom.get(atom)
                    if src is None:
                        by_atom[atom] = [(raw, a, b)]
                    else:
                        src.append((raw, a, b))
        self._by_atom = by_atom
        return by_atom

    def _positions(self) -> list[tuple[int, dict[str, list[int]]]]:
        """Per field, the positions of each hot word."""
        hot, npos, multi = self._words, self._npos, self._multi
        out: list[tuple[int, dict[str, list[int]]]] = []
        for bit, lists in self._tokenized:
            base = 0
            where: dict[str, list[int]] = {}
            for raws in lists:
                # A word's position is its index unless hyphenated words (several positions
                # each) come before it; only then are the positions summed up.
                ends: list[int] | None = None
                if multi and not multi.isdisjoint(raws):
                    ends = list(accumulate([npos.get(r, 1) for r in raws]))
                for i in [i for i, r in enumerate(raws) if r in hot]:
                    raw = raws[i]
                    pos = base + (i if ends is None else ends[i] - npos.get(raw, 1))
                    at = where.get(raw)
                    if at is None:
                        where[raw] = [pos]
                    else:
                        at.append(pos)
                base += (len(raws) if ends is None else (ends[-1] if ends else 0)) + _GAP
            if where:
                out.append((bit, where))
        return out

    def get(self, atom: int, /) -> list[Span] | None:
        built = self._built
        if atom in built:
            return built[atom]
        by_atom = self._by_atom if self._by_atom is not None else self._sources()
        src = by_atom.get(atom)
        spans: list[Span] | None = None
        if src is not None:
            fields = self._fields
            if fields is None:
                fields = self._fields = self._positions()
            spans = [
                (bit, p + a, p + b, ((p + a, p + b),))
                for bit, where in fields
                for raw, a, b in src
                for p in where.get(raw, ())
            ] or None
        built[atom] = spans
        return spans


class _Surfaces:
    """Word positions back to the text as written, for highlighting.

    Only the positions some span needs are located, and each field is scanned no further than
    the last of them: most of an article's words are never highlighted.
    """

    def __init__(
        self, sources: list[tuple[int, list[str]]], spans: list[Span], multi: set[str]
    ) -> None:
        self.texts = dict(sources)
        self.multi = multi  # raw words that take other than one position (hyphenated)
        needed: dict[int, set[int]] = {}
        for bit, _, _, pieces in spans:
            want = needed.setdefault(bit, set())
            for s, e in pieces:
                want.add(s)
                want.add(e)
        self.where: dict[int, dict[int, tuple[int, int, int]]] = {}
        for bit, want in needed.items():
            self.where[bit] = self._locate(self.texts.get(bit, []), want)

    def _locate(self, strings: list[str], want: set[int]) -> dict[int, tuple[int, int, int]]:
        table: dict[int, tuple[int, int, int]] = {}
        last = max(want)
        pos = 0
        for si, text in enumerate(strings):
            if pos > last:
                break
            # No word takes fewer than one position, so the first last-pos+1 words suffice.
            limit = last - pos + 1
            found = list(islice(textnorm.token_matches(text), limit))
            if not self.multi or self.multi.isdisjoint(m.group() for m in found):
                for p in want:
                    if pos <= p < pos + len(found):
                        m = found[p - pos]
                        table[p] = (si, m.start(), m.end())
                pos += len(found)
            else:
                multi = self.multi
                for m in found:
                    raw = m.group()
                    if raw not in multi:
                        if pos in want:
                            table[pos] = (si, m.start(), m.end())
                        pos += 1
                        continue
                    for a, b in textnorm.split_raw(raw).part_spans:
                        if pos in want:
                            table[pos] = (si, m.start() + a, m.start() + b)
                        pos += 1
            if len(found) == limit:  # position ``last`` is covered
                break
            pos += _GAP
        return table

    def terms(self, spans: list[Span]) -> tuple[str, ...]:
        found: list[tuple[int, int, int, str]] = []
        for bit, _, _, pieces in spans:
            table = self.where.get(bit, {})
            for s, e in pieces:
                first, last = table.get(s), table.get(e)
                if first is None or last is None or first[0] != last[0]:
                    continue
                text = self.texts[bit][first[0]][first[1] : last[2]]
                found.append((bit, first[0], first[1], text))
        found.sort()
        return tuple(dict.fromkeys(t for *_, t in found))
