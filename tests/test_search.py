"""Full-text search (migration 0002, storage/search.py) on SQLite FTS5 and PostgreSQL tsvector.

The PostgreSQL half uses a fresh database on 127.0.0.1:5432 per test, dropped afterwards, and is
skipped with the reason when the server does not answer (tests/support/pg.py, shared with
the other PostgreSQL tests: multi-daemon, db copy, prune).
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from seedwatch.storage import queries as q
from seedwatch.storage.db import current_revision
from seedwatch.storage.search import query_terms, search_item_ids
from tests.test_storage import NOW, feeds, pitem

DOCS = {
    "ru1": ("Совещание руководителей спецслужб СНГ", "Встреча прошла в Душанбе во вторник."),
    "ru2": ("Учения ОДКБ", "Пограничники Таджикистана провели учения; ёлка ни при чём."),
    "en1": ("CIS security chiefs meet", "Heads of security services met in Dushanbe."),
    "en2": ("Harvest festival", "Farmers in the Fergana valley celebrated the harvest."),
}


def _store(sessions: sessionmaker[Session]) -> dict[str, int]:
    fid = feeds(sessions, "a")["a"]
    with sessions() as s:
        q.store_batch(
            s,
            fid,
            [pitem(fid, k, title=t, text_=b) for k, (t, b) in DOCS.items()],
            now=NOW,
        )
        s.commit()
        rows = s.execute(text("SELECT key, id FROM items")).all()
    return {k: int(i) for k, i in rows}


def test_query_terms_are_words_only() -> None:
    assert query_terms('Душанбе  "OR" NEAR(x*') == [("душанбе", False), ("or", False),
                                                     ("near", False), ("x", True)]
    assert query_terms("  -:()  ") == []


def test_search_cyrillic_and_english(engine: Engine, sessions: sessionmaker[Session]) -> None:
    assert (current_revision(engine) or "") >= "0002"
    ids = _store(sessions)
    with sessions() as s:
        # Case folding of Cyrillic, words from the title and the text, AND of all words.
        assert search_item_ids(s, "душанбе", 10) == [ids["ru1"]]
        assert search_item_ids(s, "СПЕЦСЛУЖБ снг", 10) == [ids["ru1"]]
        assert search_item_ids(s, "спецслужб учения", 10) == []
        assert search_item_ids(s, "учени*", 10) == [ids["ru2"]]
        assert search_item_ids(s, "DUSHANBE", 10) == [ids["en1"]]
        assert search_item_ids(s, "harvest fergana", 10) == [ids["en2"]]
        assert search_item_ids(s, "secur*", 10) == [ids["en1"]]
        # Whole words: a fragment is not a hit without the star.
        assert search_item_ids(s, "secur", 10) == []
        # Query syntax of either engine is treated as words, never as an error.
        assert search_item_ids(s, 'NEAR("cis" OR) : -', 10) == []
        assert search_item_ids(s, "", 10) == []


def test_search_is_newest_first_limited_and_follows_edits_and_deletes(
    sessions: sessionmaker[Session],
) -> None:
    ids = _store(sessions)
    with sessions() as s:
        assert search_item_ids(s, "in", 10) == [ids["en2"], ids["en1"]]
        both = search_item_ids(s, "dushanbe", 10) + search_item_ids(s, "душанбе", 10)
        assert len(both) == 2
        assert search_item_ids(s, "met", 1) == [ids["en1"]]
        s.execute(text("UPDATE items SET title = 'Renamed headline' WHERE id = :i"),
                  {"i": ids["en2"]})
        s.execute(text("DELETE FROM items WHERE id = :i"), {"i": ids["en1"]})
        s.commit()
        assert search_item_ids(s, "renamed", 10) == [ids["en2"]]
        assert search_item_ids(s, "festival", 10) == []
        assert search_item_ids(s, "dushanbe", 10) == []
