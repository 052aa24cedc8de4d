"""docs/publiek.md, the page an organisation publishes (rule 2): all six rules, retention,
GDPR rights, contact and fingerprints, Dutch first then the same in English, every blank to
fill in marked the same way, and the device's own sentences quoted as it says them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from akkoord.prompts import TEXTS, Language, PromptId

DOC = Path(__file__).resolve().parent.parent / "docs" / "publiek.md"


@pytest.fixture(scope="module")
def halves() -> tuple[str, str]:
    text = DOC.read_text(encoding="utf-8")
    nl, en, *for_the_organisation = text.split("\n---\n")
    assert all("not part of the published page" in p for p in for_the_organisation)
    return nl, en


def _headings(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, re.M)


def test_dutch_first_then_the_same_sections_in_english(halves):
    nl, en = halves
    assert nl.lstrip().startswith("# Gesprekken opnemen")
    assert len(_headings(nl)) == len(_headings(en)) >= 9
    for n in (1, 3, 4, 5, 6):
        assert sum(f"(regel {n})" in h for h in _headings(nl)) == 1, n
        assert sum(f"(rule {n})" in h for h in _headings(en)) == 1, n
    assert "Spelregel 2" in nl and "Rule 2" in en
    for words in (("bewaren", "AVG", "contact", "apparaten"),):
        for w in words:
            assert any(w.lower() in h.lower() for h in _headings(nl)), w
    for w in ("keep", "GDPR", "contact", "devices"):
        assert any(w.lower() in h.lower() for h in _headings(en)), w


def test_the_rights_section_says_what_deletion_means_for_copies(halves):
    nl, en = halves
    assert "Inzage" in nl and "Verwijdering" in nl and "kopieën" in nl.lower()
    assert "niet terughalen" in nl
    assert "Access" in en and "Deletion" in en and "cannot take back" in en


def test_placeholders_are_marked_one_way_and_match_across_languages(halves):
    # HTML comments (instructions for the organisation) are not published.
    nl, en = (re.sub(r"<!--.*?-->", "", h, flags=re.S) for h in halves)
    nl_marks = re.findall(r"⟦(.*?)⟧", nl, re.S)
    en_marks = re.findall(r"⟦(.*?)⟧", en, re.S)
    assert nl_marks and len(nl_marks) == len(en_marks)
    assert all(m.startswith("IN TE VULLEN: ") for m in nl_marks)
    assert all(m.startswith("TO FILL IN: ") for m in en_marks)
    for text in (nl, en):
        assert text.count("⟦") == text.count("⟧")
        assert "xxxx" not in text and "*(naam)*" not in text  # the old, unmarked blanks


def test_the_device_is_quoted_as_it_speaks(halves):
    nl, en = halves
    for prompt in (PromptId.WAITING_FOR_OTHER, PromptId.RECORDING_STARTED,
                   PromptId.RECORDING_STOPPED):
        assert f'"{TEXTS[prompt][Language.NL]}"' in nl, prompt
        assert f'"{TEXTS[prompt][Language.EN]}"' in en, prompt


def test_the_organisation_signing_key_and_its_page_are_in_both_languages(halves):
    nl, en = halves
    assert "### Onze controlepagina" in nl and "ondertekeningssleutel (vingerafdruk)" in nl
    assert "### Our verify page" in en and "signing key (fingerprint)" in en
