"""The live LLM: Gemini's REST API, bounded by LLM_TIMEOUT, consulted only on a cache miss."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import httpx

# https://ai.google.dev/api/generate-content#method:-models.generatecontent
GEMINI_URL = (
    "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
)
LANGUAGE_NAMES = {"es": "Spanish", "fr": "French"}

log = logging.getLogger("clara.llm")


class GeminiClient:
    """Asks Gemini one question; returns None on any failure so the caller falls back."""

    def __init__(
        self,
        http: httpx.Client,
        api_key: str,
        timeout: float,
        structured: bool = False,
        url: str = GEMINI_URL,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._timeout = timeout
        self._structured = structured
        self._url = url
        # httpx's timeouts are per phase (connect, each read...), so a server that
        # trickles bytes could hold us past LLM_TIMEOUT; a future gives one deadline.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gemini")

    def ask(self, question: str, lang: str, context: tuple[str, ...] = ()) -> str | None:
        """Gemini's answer in the given language, or None past the deadline or on error."""
        future = self._pool.submit(self._ask, question, lang, context)
        try:
            return future.result(timeout=self._timeout)
        except FutureTimeout:
            log.warning("gemini did not answer within %.1fs; using the fallback", self._timeout)
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("gemini call failed (%s); using the fallback", type(exc).__name__)
        return None

    def _ask(self, question: str, lang: str, context: tuple[str, ...]) -> str | None:
        prompt = (
            "You are Clara, a civic-help assistant for people dealing with Spanish public "
            f"procedures. Answer in {LANGUAGE_NAMES.get(lang, 'Spanish')}, in under 800 "
            "characters, plainly; say so when you are not sure.\n"
        )
        if context:
            prompt += "Use these verified notes:\n" + "\n".join(context) + "\n"
        generation: dict[str, object] = {"maxOutputTokens": 400, "temperature": 0.2}
        if self._structured:
            generation["responseMimeType"] = "application/json"
            generation["responseSchema"] = {
                "type": "OBJECT",
                "properties": {"answer": {"type": "STRING"}},
                "required": ["answer"],
            }
        body = {
            "contents": [{"role": "user", "parts": [{"text": prompt + "Question: " + question}]}],
            "generationConfig": generation,
        }
        response = self._http.post(
            self._url,
            json=body,
            headers={"x-goog-api-key": self._api_key},
            timeout=self._timeout,
        )
        response.raise_for_status()
        text = response.json()["candidates"][0]["content"]["parts"][0]["text"]
        if self._structured:
            text = json.loads(text)["answer"]
        return str(text).strip() or None
