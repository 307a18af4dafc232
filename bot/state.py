"""The bot's per-app runtime state, built once by the app factory and read by the views."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

from bot.answers import Answerer
from bot.knowledge import KnowledgeBase
from bot.metrics import Metrics
from bot.settings import Settings
from bot.store import Store
from bot.warmup import Warmup

if TYPE_CHECKING:  # httpx is imported only by a bot whose LLM is on
    import httpx


@dataclass
class BotState:
    """Settings and the long-lived objects; the warm-up fills in knowledge, http and answerer."""

    settings: Settings
    metrics: Metrics
    store: Store
    """MessageSid replies and per-sender counts: this process, or Redis (bot/store.py)."""
    started_at: float = field(default_factory=time.monotonic)
    warmup: Warmup | None = None
    knowledge: KnowledgeBase | None = None
    http: httpx.Client | None = None
    answerer: Answerer | None = None


def get_state() -> BotState:
    """The state of the app serving the current request."""
    state: BotState = current_app.extensions["clara"]
    return state
