"""Spoken prompts: every id has a small, valid WAV in every language."""

from __future__ import annotations

import array
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from akkoord.prompts import (
    LANGUAGES,
    TEXTS,
    Language,
    PromptId,
    prompt_path,
    prompt_text,
    prompts_dir,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("prompt", list(PromptId))
def test_every_prompt_is_a_small_mono_16bit_wav(prompt: PromptId, language: Language) -> None:
    path = prompt_path(prompt, language)
    assert path.is_file(), f"{path} missing: run scripts/make_prompts.sh"
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getframerate() == 16_000
        frames = wav.getnframes()
        samples = array.array("h", wav.readframes(frames))
    seconds = frames / 16_000
    assert 0.5 <= seconds <= 6.0, seconds  # a short sentence, not silence or a monologue
    assert max(abs(s) for s in samples) > 8_000  # normalised speech, not silence
    assert path.stat().st_size < 200_000


def test_no_stray_files() -> None:
    expected = {prompt_path(p, lang) for p in PromptId for lang in LANGUAGES}
    found = set(prompts_dir().glob("*/*.wav"))
    assert found == expected


def test_texts_dutch_first_and_required_sentences() -> None:
    assert LANGUAGES[0] is Language.NL
    assert set(TEXTS) == set(PromptId)
    assert all(set(t) == set(Language) for t in TEXTS.values())
    assert prompt_text(PromptId.WAITING_FOR_OTHER, "nl") == (
        "Wachten op akkoord van de andere partij.")
    assert prompt_text(PromptId.RECORDING_STARTED, "nl") == "De opname is gestart."
    assert prompt_text(PromptId.RECORDING_STOPPED, "nl") == "De opname is gestopt."
    assert prompt_text(PromptId.COPY_MADE, "nl") == (
        "De kopie is klaar. U kunt de stick eruit halen.")


def test_prompt_path_is_inside_the_package() -> None:
    path = prompt_path("copy_made", "en")
    assert path == prompts_dir() / "en" / "copy_made.wav"
    assert (ROOT / "device" / "akkoord") in path.parents
    with pytest.raises(ValueError):
        prompt_path("no_such_prompt", "nl")
    with pytest.raises(ValueError):
        prompt_path(PromptId.COPY_MADE, "de")


def test_listing_for_the_generator_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "akkoord.prompts"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(lines) == len(PromptId) * len(LANGUAGES)
    assert all(len(parts) == 3 for parts in lines)
    assert lines[0][0] == "nl"  # Dutch first
    assert {(lang, pid) for lang, pid, _ in lines} == {
        (lang.value, p.value) for lang in LANGUAGES for p in PromptId
    }


def test_generator_script_is_executable_and_says_what_it_needs() -> None:
    script = ROOT / "scripts" / "make_prompts.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text(encoding="utf-8")
    assert "espeak-ng" in text and "sox" in text and "Needs:" in text
