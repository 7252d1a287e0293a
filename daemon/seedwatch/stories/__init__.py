"""Fold near-duplicates and reports of the same event into stories, within a time window.

    item --fingerprint--> Fingerprint --StoryIndex.find--> story id | None
    (after commit) StoryIndex.add(item, story_id); periodically StoryIndex.expire(now)

Pure and in memory: no session, no clock; the daemon rebuilds the index from the database at
start by adding the fingerprints of the items inside the window.
"""

from seedwatch.stories.fingerprint import Fingerprint, fingerprint
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
    "fingerprint",
]
