"""Full-text search over items (title and text): FTS5 on SQLite, tsvector on PostgreSQL.

The index comes from migration 0002. A query is a list of words, all of which must occur
(whole words, any case); ``word*`` matches words starting with ``word``. Nothing in the query is
passed through as search syntax, so a user cannot write a query that errors.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.orm import Session

from seedwatch.storage.common import is_postgres, storage_errors

# The same expression as the index of migration 0002, character for character: PostgreSQL only
# uses an expression index for a query that repeats the expression.
PG_DOCUMENT = "translate(lower(coalesce(title, '') || ' ' || coalesce(text, '')), 'ё', 'е')"

_WORD = re.compile(r"(\w+)(\*?)")


def query_terms(query: str) -> list[tuple[str, bool]]:
    """The words of a search (lower-cased) and whether each is a prefix (``word*``)."""
    return [(w.casefold(), bool(star)) for w, star in _WORD.findall(query)]


def _fts5_query(terms: list[tuple[str, bool]]) -> str:
    # Quoted strings are plain terms to FTS5: no operator or column filter can slip in.
    return " ".join(f'"{w}"' + ("*" if prefix else "") for w, prefix in terms)


def _tsquery(terms: list[tuple[str, bool]]) -> str:
    # \w+ words hold no tsquery operators; ё is folded as the indexed document is.
    return " & ".join(w.replace("ё", "е") + (":*" if prefix else "") for w, prefix in terms)


@storage_errors
def search_item_ids(s: Session, query: str, limit: int) -> list[int]:
    """Ids of items whose title or text holds every word of ``query``, newest stored first."""
    terms = query_terms(query)
    if not terms or limit <= 0:
        return []
    if is_postgres(s):
        stmt = text(
            f"SELECT id FROM items WHERE to_tsvector('simple', {PG_DOCUMENT}) "
            "@@ to_tsquery('simple', :q) ORDER BY id DESC LIMIT :n"
        )
        rows = s.execute(stmt, {"q": _tsquery(terms), "n": limit}).scalars()
    else:
        stmt = text(
            "SELECT rowid FROM items_fts WHERE items_fts MATCH :q ORDER BY rowid DESC LIMIT :n"
        )
        rows = s.execute(stmt, {"q": _fts5_query(terms), "n": limit}).scalars()
    return [int(r) for r in rows]


def not_search_index(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic ``include_object`` filter: leave migration 0002's search objects (FTS5 tables,
    the GIN index), which the models do not declare, out of autogenerate and compare_metadata."""
    return not (name or "").startswith(("items_fts", "ix_items_fts"))
