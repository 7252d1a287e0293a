"""Resemblance of items to the seed documents: ``Classifier.build(load_seeds(dir)).score(...)``.

Scoring splits in two: ``analyze(title, text)`` is pure (a worker process may run it) and
``Classifier.score_many``/``observe_analyzed`` apply the stream statistics to its results.

Backends: "lexical" (default; BM25 term overlap plus static word vectors shipped as a small
table derived from all-MiniLM-L6-v2, numpy only) and "words" (term overlap only).
"""

from __future__ import annotations

from seedwatch.classify.analysis import Analysis, analyze, analyze_with_text
from seedwatch.classify.command import run_score_command
from seedwatch.classify.model import BACKENDS, DEFAULT_THRESHOLD, Classifier
from seedwatch.classify.seeds import SeedDoc, SeedSet, Topic, load_seeds, make_doc

__all__ = [
    "BACKENDS",
    "DEFAULT_THRESHOLD",
    "Analysis",
    "Classifier",
    "SeedDoc",
    "SeedSet",
    "Topic",
    "analyze",
    "analyze_with_text",
    "load_seeds",
    "make_doc",
    "run_score_command",
]
