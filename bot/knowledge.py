"""The cached knowledge base: load it, detect the language, match a message to an entry."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path(__file__).parent / "data" / "knowledge.json"
LANGUAGES = ("es", "fr")

# Short words that tell Spanish from French. For one-line WhatsApp messages
# ("hola necesito el padron", "comment avoir la carte") a stop-word vote is
# enough; a language-ID model would cost memory the free tier does not have.
_SPANISH_WORDS = """
el los las del que y en como para por mi necesito quiero puedo donde cuando hola
buenas ayuda tengo hacer pedir solicitar tarjeta ayuntamiento gracias es una yo me
"""
_FRENCH_WORDS = """
le les des je est comment pour avec ou quand bonjour bonsoir salut aide besoin veux
peux faire demander carte mairie merci vous suis mon ma une et au aux qu quoi sante revenu
"""
_MARKERS = {"es": frozenset(_SPANISH_WORDS.split()), "fr": frozenset(_FRENCH_WORDS.split())}
_SPANISH_ONLY_CHARS = frozenset("ñ¿¡")
_FRENCH_ONLY_CHARS = frozenset("çèêëàâîïôûœ")


def fold(text: str) -> str:
    """Lower-case and strip accents, so 'Mínimo' and 'minimo' match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    if decomposed.isascii():  # no combining mark to drop (most messages once decomposed)
        return decomposed
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str) -> list[str]:
    """The message's words, folded: what the language vote and the topic match read."""
    return _WORD.findall(fold(text))


def detect_language(text: str, words: list[str] | None = None) -> str:
    """'es' or 'fr' by a vote of marker words and letters; Spanish when undecided.
    `words`: words_of(text), when the caller has them already."""
    lowered = text.casefold()
    if words is None:
        words = words_of(text)
    score = {lang: sum(w in _MARKERS[lang] for w in words) for lang in LANGUAGES}
    # str.count per marker letter: the same sum as a test of each character, in C.
    score["es"] += 2 * sum(map(lowered.count, _SPANISH_ONLY_CHARS))
    score["fr"] += 2 * sum(map(lowered.count, _FRENCH_ONLY_CHARS))
    return "fr" if score["fr"] > score["es"] else "es"


@dataclass(frozen=True)
class Entry:
    """One cached answer: topic, language, text and optional audio file name."""

    id: str
    topic: str
    lang: str
    answer: str
    audio: str | None


@dataclass(frozen=True)
class KnowledgeBase:
    """Entries, the phrases that name each topic, and a fallback per language."""

    entries: tuple[Entry, ...]
    topics: dict[str, tuple[str, ...]]
    fallback: dict[str, str]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def audio_files(self) -> tuple[str, ...]:
        """Every audio file an entry refers to."""
        return tuple(e.audio for e in self.entries if e.audio)

    @functools.cached_property
    def _padded_phrases(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        # Built once: each phrase as a whole-word needle, " phrase ".
        return tuple(
            (topic, tuple(f" {phrase} " for phrase in phrases))
            for topic, phrases in self.topics.items()
        )

    @functools.cached_property
    def _by_topic_and_lang(self) -> dict[tuple[str, str], Entry]:
        found: dict[tuple[str, str], Entry] = {}
        for entry in self.entries:
            found.setdefault((entry.topic, entry.lang), entry)  # the first one, as before
        return found

    def topic_of(self, text: str, words: list[str] | None = None) -> str | None:
        """The topic a message asks about; procedures win over greetings.
        `words`: words_of(text), when the caller has them already."""
        padded = " " + " ".join(words_of(text) if words is None else words) + " "
        found = [
            topic
            for topic, needles in self._padded_phrases
            if any(needle in padded for needle in needles)
        ]
        procedures = [t for t in found if t != "help"]
        candidates = procedures or found
        return candidates[0] if candidates else None

    def lookup(self, text: str, lang: str, words: list[str] | None = None) -> Entry | None:
        """The entry for the message's topic in the given language, if any."""
        topic = self.topic_of(text, words)
        return None if topic is None else self._by_topic_and_lang.get((topic, lang))


class KnowledgeError(ValueError):
    """The knowledge file is missing or malformed."""


def load_knowledge(path: Path = DEFAULT_PATH) -> KnowledgeBase:
    """Read and validate the knowledge file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = tuple(
            Entry(e["id"], e["topic"], e["lang"], e["answer"], e.get("audio"))
            for e in data["entries"]
        )
        topics = {t: tuple(fold(p) for p in phrases) for t, phrases in data["topics"].items()}
        fallback = {lang: data["fallback"][lang] for lang in LANGUAGES}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KnowledgeError(f"cannot load knowledge file {path}: {exc}") from exc
    for entry in entries:
        if entry.lang not in LANGUAGES or entry.topic not in topics:
            raise KnowledgeError(f"{path}: entry {entry.id} has unknown lang or topic")
    return KnowledgeBase(entries, topics, fallback)
