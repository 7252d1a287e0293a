"""Fold near-duplicates and reports of the same event into stories, within a time window.

    item --fingerprint (pure, any process)--> Fingerprint
    a poll's fingerprints --StoryIndex.match_many--> StoryMatch | None each (match: one)
    (after commit) StoryIndex.add_fingerprint(fp, story_id); periodically StoryIndex.expire(now)
    (StoryIndex.find(item) / add(item, story_id) do both steps in one process)

Pure and in memory: no session, no clock; the daemon rebuilds the index from the database at
start by adding the fingerprints of the items inside the window.
"""

from seedwatch.stories.fingerprint import Fingerprint, exact_key, fingerprint
from seedwatch.stories.index import StoryIndex, StoryMatch
from seedwatch.stories.settings import StorySettings
from seedwatch.stories.similarity import Similarity, compare

__all__ = [
    "Fingerprint",
    "Similarity",
    "StoryIndex",
    "StoryMatch",
    "StorySettings",
    "compare",
    "exact_key",
    "fingerprint",
]
