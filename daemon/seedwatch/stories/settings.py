"""The knobs of story matching, with the defaults measured in bench/eval_stories.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StorySettings:
    """Thresholds for folding an item into an existing story.

    Two items are the same story when they share the canonical URL or content hash, when their
    leads are near-identical (``near_duplicate``), or when several independent signals agree:
    the same vocabulary, the same names and numbers, and headline words that the other item
    also uses. One signal alone folds different stories that merely share a topic or a
    site's boilerplate (cookie banners share whole paragraphs, never the headline).

    The event thresholds were chosen on the SemEval-2022 Task 8 training split (most recall at
    precision >= 0.965 there) and checked on the test split: bench/eval_stories.py prints both.
    """

    window: float = 72 * 3600.0  # seconds: how far apart in time two items of one story may be
    lead_chars: int = 1000  # only the headline and this much text count: wires differ further on
    max_lead_terms: int = 96  # lead words kept beyond the headline's (the smallest hashes)
    entity_prefix: int = 5  # proper nouns compare on this many Latin letters
    near_duplicate: float = 0.85  # Jaccard of lead terms: a copy with small edits
    term_min: float = 0.07  # event: at least this Jaccard of lead terms,
    entity_min: int = 1  # this many shared names/numbers,
    headline_min: float = 0.35  # this share of headline words found in the other item,
    score_min: float = 0.4  # and terms + entities + headline/2 at least this
    caseless_entities: int = 3  # fewer names than this on either side: the caseless rule
    caseless_term_min: float = 0.2
    cross_entity_min: int = 3  # across languages only names and numbers can agree
    cross_entity_jaccard_min: float = 0.2
    # Two languages in one script (German, English): more names, a lower share of them, and
    # fewer shared words than this (else the tag was misdetected and the words decide).
    script_cross_entity_min: int = 5
    script_cross_entity_jaccard_min: float = 0.13
    cross_term_max: float = 0.06
    same_outlet_events: bool = False  # fold one outlet's different articles on one event?
    template_min_items: int = 8  # a feed with this many items in the window has a template:
    template_share: float = 0.25  # the keys on this share of its items (see templates.py)
    max_postings: int = 200  # a key carried by more items in the window than this is not rare
    max_candidates: int = 12  # candidates verified exactly per lookup, most shared keys first
    min_shared_keys: int = 2  # a candidate shares at least this many names or headline words
    # Items kept at most; beyond, the oldest go first (their memory once a quarter of the
    # slots are dead). About 330 bytes each on bench/cold_start.py's items (a 49-byte row,
    # 58 tokens of 4 bytes, 6 postings of 8): about 150 MB at this bound, which a cold start of
    # 10,000 feeds of 50 items reaches.
    max_items: int = 450_000
