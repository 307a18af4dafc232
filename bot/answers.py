"""Answer a message: the cached entry first, the live LLM on a miss, else a helpful fallback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.guardrails import clean_input, fit_reply
from bot.knowledge import KnowledgeBase, detect_language, words_of
from bot.metrics import Metrics

if TYPE_CHECKING:  # httpx is imported only by a bot whose LLM is on
    from bot.llm import GeminiClient


@dataclass(frozen=True)
class Answer:
    """What the bot replies: text, language, where it came from, and an optional audio file."""

    text: str
    lang: str
    source: str
    """'cache', 'llm' or 'fallback'."""
    audio: str | None = None


class Answerer:
    """Turns an incoming message into an Answer."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        metrics: Metrics,
        llm: GeminiClient | None = None,
        guardrails: bool = True,
        rag: bool = False,
    ) -> None:
        self._knowledge = knowledge
        self._metrics = metrics
        self._llm = llm
        self._guardrails = guardrails
        self._rag = rag

    def answer(self, message: str) -> Answer:
        """The reply to one message."""
        if self._guardrails:
            message = clean_input(message)
        words = words_of(message)  # folded once for both the vote and the match
        lang = detect_language(message, words)
        entry = self._knowledge.lookup(message, lang, words)
        if entry is not None:
            self._metrics.cache_hits.inc()
            return Answer(entry.answer, lang, "cache", entry.audio)
        self._metrics.cache_misses.inc()
        if self._llm is not None and message:
            context = self._context(lang) if self._rag else ()
            reply = self._llm.ask(message, lang, context)
            if reply:
                return Answer(fit_reply(reply) if self._guardrails else reply, lang, "llm")
        return Answer(self._knowledge.fallback[lang], lang, "fallback")

    def _context(self, lang: str) -> tuple[str, ...]:
        # RAG over eight entries: the whole of the language's cache is the context.
        return tuple(e.answer for e in self._knowledge.entries if e.lang == lang)
