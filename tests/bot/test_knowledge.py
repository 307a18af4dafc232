"""The knowledge base: eight entries, accent-folding matches, language detection, fallback."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import knowledge
from bot.knowledge import (
    KnowledgeBase,
    KnowledgeError,
    detect_language,
    fold,
    load_knowledge,
    words_of,
)


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge()


def test_eight_entries_three_procedures_two_languages(kb: KnowledgeBase) -> None:
    assert len(kb) == 8
    assert {(e.topic, e.lang) for e in kb.entries} == {
        (t, lang)
        for t in ("imv", "empadronamiento", "tarjeta_sanitaria", "help")
        for lang in ("es", "fr")
    }
    assert len(kb.audio_files) == 6


def test_fold_strips_case_and_accents() -> None:
    assert fold("¿Cómo pido el INGRESO MÍNIMO Vital?") == "¿como pido el ingreso minimo vital?"
    assert fold("Santé, ÇA") == "sante, ca"


@pytest.mark.parametrize(
    ("message", "lang"),
    [
        ("Hola, necesito el padrón", "es"),
        ("¿Dónde pido la tarjeta sanitaria?", "es"),
        ("ingreso minimo vital", "es"),
        ("Bonjour, comment avoir la carte sanitaire ?", "fr"),
        ("je veux demander le revenu minimum", "fr"),
        ("Où est la mairie pour l'empadronamiento", "fr"),
    ],
)
def test_detect_language(message: str, lang: str) -> None:
    assert detect_language(message) == lang


@pytest.mark.parametrize(
    ("message", "entry_id"),
    [
        ("¿Cómo pido el INGRESO MÍNIMO VITAL?", "imv_es"),
        ("quiero solicitar el imv", "imv_es"),
        ("comment demander le revenu minimum vital", "imv_fr"),
        ("necesito empadronarme", "empadronamiento_es"),
        ("comment faire l'inscription municipale", "empadronamiento_fr"),
        ("Tarjeta Sanitaria", "tarjeta_sanitaria_es"),
        ("je veux la carte de santé", "tarjeta_sanitaria_fr"),
        ("hola", "help_es"),
        ("bonjour", "help_fr"),
        ("hola, quiero el padron", "empadronamiento_es"),
    ],
)
def test_lookup(kb: KnowledgeBase, message: str, entry_id: str) -> None:
    entry = kb.lookup(message, detect_language(message))
    assert entry is not None
    assert entry.id == entry_id


def test_no_match_is_none(kb: KnowledgeBase) -> None:
    assert kb.lookup("el tiempo en Madrid mañana", "es") is None
    # word boundaries: 'imv' inside another word is not a match
    assert kb.topic_of("limvx") is None


def test_broken_file_is_a_knowledge_error(tmp_path: Path) -> None:
    bad = tmp_path / "k.json"
    bad.write_text(json.dumps({"entries": [{"id": "x"}]}))
    with pytest.raises(KnowledgeError, match="cannot load"):
        load_knowledge(bad)
    with pytest.raises(KnowledgeError):
        load_knowledge(tmp_path / "missing.json")


def _reference_language(text: str) -> str:
    """detect_language's definition, letter by letter (its counting must agree)."""
    lowered = text.casefold()
    folded = "".join(
        c for c in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(c)
    )
    words = re.findall(r"[a-z0-9]+", folded)
    es = sum(w in knowledge._MARKERS["es"] for w in words)
    fr = sum(w in knowledge._MARKERS["fr"] for w in words)
    es += 2 * sum(c in "ñ¿¡" for c in lowered)
    fr += 2 * sum(c in "çèêëàâîïôûœ" for c in lowered)
    return "fr" if fr > es else "es"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="aeiouñ¿¡çèêëàâîïôûœ ÉÇÑ\u0301lepourhocmnt", max_size=40))
def test_the_fast_paths_fold_and_vote_as_the_definition_does(text: str) -> None:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    assert fold(text) == "".join(c for c in decomposed if not unicodedata.combining(c))
    assert detect_language(text) == _reference_language(text)
    assert detect_language(text, words_of(text)) == _reference_language(text)
