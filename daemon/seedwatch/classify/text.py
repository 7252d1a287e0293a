"""Tokenizing for the classifier: Unicode words, script-aware stemming, stop words."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

WORD_RE = re.compile(r"[^\W\d_](?:[^\W_]|['’\-](?=[^\W\d_]))*", re.UNICODE)
CYRILLIC = re.compile(r"[\u0400-\u04ff]")

# General function words; they carry no topic whatever the seeds are.
_STOP_EN_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves said says say
    one two three new also year years last first may might must shall would could us mr mrs ms
    reuters ap afp quot amp lt gt nbsp http https www com href its it's week today yesterday
    monday tuesday wednesday thursday friday saturday sunday"""
STOP_EN = frozenset(_STOP_EN_TEXT.split())
_STOP_RU_TEXT = """
    и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее
    мне было вот от меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был
    него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней
    для мы тебя их чем была сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того
    потому этого какой совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда зачем
    всех никогда можно при наконец два об другой хоть после над больше тот через эти нас про всего
    них какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя
    такой им более всегда конечно всю между это также который которые которая которого году года
    сообщает сообщил сообщила заявил заявила рассказал рассказала фото риа новости"""
STOP_RU = frozenset(_STOP_RU_TEXT.split())


@lru_cache(maxsize=4)
def _stemmer(lang: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(lang)


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (letters, inner apostrophes and hyphens)."""
    return [w.lower().replace("’", "'") for w in WORD_RE.findall(text)]


def _stem_once(word: str) -> str:
    if CYRILLIC.search(word):
        return str(_stemmer("russian").stemWord(word.replace("ё", "е")))
    return str(_stemmer("english").stemWord(word))


# News vocabulary is Zipfian: a cache of seen words saves most of the stemmer calls.
@lru_cache(maxsize=262_144)
def stem_info(word: str) -> tuple[str, bool]:
    """(stem, whether the stem is Cyrillic): Russian stems take their document frequencies
    from Russian texts only, so the analysis marks them."""
    s = _stem_once(word)
    return s, CYRILLIC.search(s) is not None


def stems(tokens: list[str]) -> list[str]:
    """Content-word stems: stop words dropped, English or Russian stemmer chosen per word.
    Uncached: it serves one-off work (the table's prior, ~28k words), which the cache would
    hold for the life of the process."""
    return [_stem_once(w) for w in tokens if len(w) >= 2 and w not in STOP_EN and w not in STOP_RU]
