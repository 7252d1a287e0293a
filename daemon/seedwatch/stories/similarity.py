"""Exact verification of one candidate pair: several signals must agree before two items fold."""

from __future__ import annotations

from dataclasses import dataclass

from seedwatch.stories.fingerprint import Fingerprint
from seedwatch.stories.settings import StorySettings
from seedwatch.stories.templates import FeedTemplates

ENTITY_TAG = 1  # index keys: entity hash << 1 | 1, headline word hash << 1


@dataclass(frozen=True)
class Similarity:
    """The signals of one pair; ``reason`` is empty when they do not make one story."""

    terms: float  # Jaccard of lead terms (headline included)
    entities: float  # Jaccard of names and numbers
    shared_entities: int
    headline: float  # share of each headline's words that the other item uses, averaged
    score: float  # terms + entities + headline / 2
    reason: str  # "url" | "content" | "near-duplicate" | "event" | "cross-language" | ""


_NONE = Similarity(0.0, 0.0, 0, 0.0, 0.0, "")
_CASED = frozenset({"latin", "cyrillic", "greek"})


class Probe:
    """One item's fingerprint as Python sets, built once and compared with many candidates.

    The index keeps compact numpy arrays per item; set lookups from the probe side are several
    times faster than numpy set operations on arrays this small.
    """

    __slots__ = ("entities", "fp", "settings", "templates", "terms", "title")

    def __init__(
        self, fp: Fingerprint, settings: StorySettings, templates: FeedTemplates | None = None
    ) -> None:
        self.fp = fp
        self.settings = settings
        self.templates = templates
        self.terms = frozenset(fp.terms.tolist())
        self.entities = frozenset(fp.entities.tolist())
        self.title = frozenset(fp.title.tolist())

    def _template(self, feeds: tuple[int, ...], keys: list[int]) -> set[int]:
        """Those of ``keys`` that are template text of any of ``feeds``."""
        tpl = self.templates
        if tpl is None or not keys:
            return set()
        out: set[int] = set()
        for feed in feeds:
            out |= tpl.template_keys(feed, keys)
        return out

    def compare(self, other: Fingerprint) -> Similarity:
        a, b, s = self.fp, other, self.settings
        if a.url and a.url == b.url:
            return Similarity(1.0, 1.0, 0, 1.0, 1.0, "url")
        if a.content_hash == b.content_hash:
            return Similarity(1.0, 1.0, 0, 1.0, 1.0, "content")
        feeds = (a.source,) if a.source == b.source else (a.source, b.source)
        b_ents = b.entities.tolist()
        shared: set[int] = set(self.entities.intersection(b_ents))
        e_union = len(self.entities) + len(b_ents) - len(shared)
        if shared and self.templates is not None:
            # A name both items carry because their outlets always print it is no evidence.
            tpl = self._template(feeds, [h << 1 | ENTITY_TAG for h in shared])
            shared = {h for h in shared if (h << 1 | ENTITY_TAG) not in tpl}
        ne = len(shared)
        ej = ne / e_union if e_union else 0.0
        if a.script != b.script:
            return self._cross(ne, ej)
        other_language = a.language != b.language and "und" not in (a.language, b.language)
        # Cheap rejection first: most candidates share a name or two and nothing else.
        # Scripts without capitals give names only where Latin brands or digits slip in
        # ("beIN SPORTS", "HD"): those are no evidence of one event.
        caseless = (
            a.script not in _CASED or min(len(self.entities), len(b_ents)) < s.caseless_entities
        )
        if not caseless and ne < s.entity_min:
            return _NONE
        b_terms = b.terms.tolist()
        nt = len(self.terms.intersection(b_terms))
        union = len(self.terms) + len(b_terms) - nt
        tj = nt / union if union else 0.0
        b_title: list[int] = b.title.tolist()
        b_set = set(b_terms)
        shared_a = [h for h in self.title if h in b_set]
        shared_b = [h for h in b_title if h in self.terms]
        na, nb = len(self.title), len(b_title)
        if self.templates is not None and (shared_a or shared_b):
            # Only shared headline words can be template evidence; drop those from the count.
            tpl = self._template(feeds, [h << 1 for h in {*shared_a, *shared_b}])
            if tpl:
                na -= sum(1 for h in shared_a if h << 1 in tpl)
                nb -= sum(1 for h in shared_b if h << 1 in tpl)
                shared_a = [h for h in shared_a if h << 1 not in tpl]
                shared_b = [h for h in shared_b if h << 1 not in tpl]
        ha = len(shared_a) / na if na else 0.0
        hb = len(shared_b) / nb if nb else 0.0
        head = (ha + hb) / 2
        score = tj + ej + 0.5 * head
        if other_language and tj < s.cross_term_max and a.source != b.source:
            # Two languages in one script (German, English): stems differ, names do not. Few
            # shared words also tell a real language pair from a misdetected one.
            cross = self._cross(ne, ej, same_script=True)
            if cross.reason:
                return cross
        reason = ""
        if tj >= s.near_duplicate:
            reason = "near-duplicate"
        elif a.source == b.source and not s.same_outlet_events:
            # One outlet's two different articles are two stories to its readers (and share
            # its template); a re-post under a new URL is caught as a near-duplicate above.
            pass
        elif caseless:
            # Scripts without capitals (Arabic, CJK) give no names: words and headline decide.
            if tj >= s.caseless_term_min and head >= s.headline_min:
                reason = "event"
        elif tj >= s.term_min and head >= s.headline_min and score >= s.score_min:
            reason = "event"
        return Similarity(tj, ej, ne, head, score, reason)

    def _cross(self, ne: int, ej: float, *, same_script: bool = False) -> Similarity:
        # Words never agree across scripts; transliterated names and numbers do. Language tags
        # only add this path: detection confuses neighbours (German taken for English), so
        # one script is always also compared word by word.
        s = self.settings
        if same_script:
            ok = ne >= s.script_cross_entity_min and ej >= s.script_cross_entity_jaccard_min
        else:
            ok = ne >= s.cross_entity_min and ej >= s.cross_entity_jaccard_min
        return Similarity(0.0, ej, ne, 0.0, ej, "cross-language" if ok else "")


def compare(a: Fingerprint, b: Fingerprint, settings: StorySettings) -> Similarity:
    """Whether ``a`` and ``b`` report one story, and how strongly each signal says so."""
    return Probe(a, settings).compare(b)
