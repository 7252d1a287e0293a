"""Watch rules: the query language analysts write in ``watchlist.toml``, and matching.

    query text --parse_query--> syntax tree --compile_watchlist--> Watchlist
    Item + Score --Watchlist.match--> Match(rule, terms, channels) ...

The rule language
=================

Terms
-----
``terrorism``
    A word. Matches every form of it: English and Russian words are reduced to their stem
    (Snowball), so ``terrorist`` finds "terrorists" and ``террорист`` finds "террористов",
    "террористами". Digits are words too (``2024``).
``"Shanghai Cooperation Organisation"``
    A phrase: the words in this order, next to each other. Punctuation between them does not
    count, so it also finds "Shanghai, Cooperation-Organisation". Each word of a phrase still
    matches all its forms; ``"террористическая организация"`` finds "террористической
    организации". Typographic quotes work too: “...”, «...», „...“.
``задерж*``
    A prefix: any word that starts with these letters ("задержан", "задержали",
    "задержания"). At least 2 letters before ``*``; ``*`` only at the end of a word. Inside a
    phrase, ``"террор* акт"`` makes that one word a prefix.
``=terrorist``, ``="Islamic State"``
    Exact form: only this form of the word (still case-, ё/е- and accent-insensitive), no
    stemming, no aliases, no transliteration. ``=terrorist`` does not find "terrorists".

Operators
---------
``a AND b``, ``a b``
    Both. Terms written next to each other are joined by AND.
``a OR b``
    Either.
``NOT a``, ``a NOT b``
    Without. ``a NOT b`` means ``a AND NOT b``. A query must contain something to look for:
    ``NOT football`` on its own (or ``a OR NOT b``, which matches items with neither word) is
    an error.
``a NEAR/n b``
    Both, with at most ``n`` other words between them, in either order, in the same field:
    ``ФСБ NEAR/5 задержан*`` finds "ФСБ сообщила, что в Москве задержан ...".
    Each side is a word, prefix, phrase, or a parenthesised OR of those
    (``(ФСБ OR КНБ) NEAR/3 задерж*``); ``NEAR/0`` means adjacent.
``( ... )``
    Grouping.

Operators are the English words AND, OR, NOT, NEAR/n in any letter case (``and`` is AND too:
a rule that silently required the word "and" would never fire). To search for one of these
words, quote it: ``"not"``. ``-word`` is an error, not an exclusion: write ``NOT word``.
Binding, tightest first: ``NOT``, ``NEAR``, ``AND`` (explicit or
implicit), ``OR``; so ``a b OR c`` is ``(a AND b) OR c`` and ``NOT a NEAR/3 b`` is
``NOT (a NEAR/3 b)``.

Fields
------
By default a term looks at the item's title and text. A field prefix narrows one term, phrase
or group: ``title:``, ``text:``, ``url:`` (the item link, split into words), ``feed:`` (the
feed's name and URL), ``tag:`` (the item's categories). Example: ``terror* NOT
title:football``, ``title:(ОДКБ OR CSTO)``, ``feed:akipress``. An inner field wins:
``title:(a text:b)``. NEAR and phrases only join words of the same field (and of the same tag).

Letters and words
-----------------
Case is folded (``casefold``), ``ё`` = ``е`` (``й`` stays its own letter), accents on Latin
letters are dropped (``café`` = ``cafe``; Kazakh/Uzbek Latin ş ğ ñ ä ı fold to s g n a i),
apostrophes of every kind are the same and vanish inside words (Uzbek ``O‘zbekiston`` =
``Oʻzbekiston`` = ``O'zbekiston`` = ``Ozbekiston``; English ``CSTO's`` = ``CSTO``). A word is a
run of Unicode letters and digits, so Kazakh, Kyrgyz and Uzbek letters (ә ғ қ ң ө ұ ү һ і ў ҳ)
are part of words: ``Қазақстан`` is one word, and ``СНГ`` does not match inside "СНГХ". A
hyphenated word is both its parts and the joined word: text "Абу-Даби" is found by ``Даби``,
``"Абу Даби"``, ``Абу-Даби`` and ``Абудаби``. En and em dashes separate words.

Aliases
-------
Defined once in the watchlist file (``[aliases]``), used in any rule: with
``CIS = ["СНГ", "Commonwealth of Independent States"]`` the query term ``CIS`` (or ``СНГ``, or
the phrase) matches any of the three; multi-word variants are phrases. Exact (``=CIS``) and
prefix terms are not expanded.

Transliteration
---------------
A Latin word of 4 or more letters written with a capital (a name) also finds its Cyrillic
spelling: ``Mirziyoyev`` finds "Мирзиёев", "Мирзиеева"; ``Tokayev`` finds "Токаев";
``Japarov`` "Жапаров"; ``Rahmon`` "Рахмон". Both sides are reduced to a Latin skeleton that
merges the usual news spellings (kh/h, zh/j/dzh, y/i, yo/io/e, double letters). Lower-case or
short words (``more``, ``pole``) are not transliterated, so they do not find "море", "поле".
The other direction (a Cyrillic query finding Latin text) needs an alias.

Performance
-----------
All terms of all rules go into one Aho-Corasick automaton; an item's words are scanned once,
and only rules with at least one hit are evaluated (which is why a query that matches with no
hits, such as ``NOT x``, is refused).
"""

from __future__ import annotations

from seedwatch.rules.compile import compile_watchlist
from seedwatch.rules.match import CompiledRule, Watchlist
from seedwatch.rules.nodes import FIELDS, And, Near, Node, Not, Or, Phrase, Scope, Word, to_text
from seedwatch.rules.parser import parse_query

__all__ = [
    "FIELDS",
    "And",
    "CompiledRule",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Scope",
    "Watchlist",
    "Word",
    "compile_watchlist",
    "parse_query",
    "to_text",
]
