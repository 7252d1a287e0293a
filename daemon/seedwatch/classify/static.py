"""The shipped static word-vector table (derived offline from all-MiniLM-L6-v2; see derive.py).

It holds, for ~28k English words, a 64-dimensional int8 vector, a background document frequency,
and a background sample of ordinary news (as bags of vocabulary indices) used to calibrate scores
before the daemon has seen a stream. numpy alone reads it; no model runs at scoring time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from seedwatch.errors import SeedError

log = logging.getLogger(__name__)

TABLE_PATH = Path(__file__).with_name("static_en.npz")


@dataclass(frozen=True)
class StaticTable:
    words: tuple[str, ...]
    index: dict[str, int]
    # (n_words, dims), PCA-centred: row i is vectors[i] * scale. Kept as int8 (a quarter of
    # the memory); sums of rows are scaled once (see features._dense).
    vectors: npt.NDArray[np.int8]
    scale: npt.NDArray[np.float32]
    df: npt.NDArray[np.float64]  # background document frequency per word
    ndocs: int
    background: tuple[str, ...]  # background sample as space-joined known words


@lru_cache(maxsize=2)
def load_index(path: Path = TABLE_PATH) -> dict[str, int]:
    """Word -> row of the table, without the vectors: all a text analysis in a worker needs."""
    try:
        with np.load(path) as z:
            words = str(z["words"]).split("\n")
    except (OSError, KeyError, ValueError) as e:
        raise SeedError(f"static word-vector table {path} is unreadable: {e}") from e
    return {w: i for i, w in enumerate(words)}


@lru_cache(maxsize=2)
def load_table(path: Path = TABLE_PATH) -> StaticTable:
    """Read the table once per process; SeedError when it is missing or damaged."""
    try:
        with np.load(path) as z:
            vectors = z["vectors"].astype(np.int8)
            scale = z["scale"].astype(np.float32)
            df = z["df"].astype(np.float64)
            ndocs = int(z["ndocs"])
            ids = z["bg_ids"].astype(np.int64)
            offsets = z["bg_offsets"].astype(np.int64)
    except (OSError, KeyError, ValueError) as e:
        raise SeedError(f"static word-vector table {path} is unreadable: {e}") from e
    index = load_index(path)
    words = tuple(index)  # the index's strings, not a second copy of 28k words
    background = tuple(
        " ".join(words[i] for i in ids[offsets[k] : offsets[k + 1]])
        for k in range(len(offsets) - 1)
    )
    return StaticTable(
        words=words,
        index=index,
        vectors=vectors,
        scale=scale,
        df=df,
        ndocs=ndocs,
        background=background,
    )
