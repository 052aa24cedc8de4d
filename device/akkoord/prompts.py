"""Spoken prompts: ids, their Dutch and English texts, and where their WAV files live.

The texts here are the single source: ``scripts/make_prompts.sh`` reads them (``python -m
akkoord.prompts``) and renders ``assets/prompts/<language>/<id>.wav`` with espeak-ng, so a
changed sentence and its recording cannot drift apart unnoticed (``tests/test_prompts.py``
checks every id has a file in every language).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

__all__ = [
    "LANGUAGES",
    "TEXTS",
    "Language",
    "PromptId",
    "prompt_path",
    "prompt_text",
    "prompts_dir",
]


class Language(StrEnum):
    NL = "nl"
    EN = "en"


#: Dutch first: it is the device's default and the language of its users.
LANGUAGES: tuple[Language, ...] = (Language.NL, Language.EN)


class PromptId(StrEnum):
    """Every spoken sentence; the value is the WAV file's stem."""

    WAITING_FOR_OTHER = "waiting_for_other"
    RECORDING_STARTED = "recording_started"
    RECORDING_STOPPED = "recording_stopped"
    WINDOW_EXPIRED = "window_expired"
    FAULT = "fault"
    COPY_CONFIRM = "copy_confirm"
    COPY_MADE = "copy_made"
    COPY_FAILED = "copy_failed"
    NO_RECORDING = "no_recording"
    COLLECT_CONFIRM = "collect_confirm"
    COLLECT_DONE = "collect_done"
    COLLECT_FAILED = "collect_failed"
    COLLECT_RECORDINGS = "collect_recordings"


TEXTS: dict[PromptId, dict[Language, str]] = {
    PromptId.WAITING_FOR_OTHER: {
        Language.NL: "Wachten op akkoord van de andere partij.",
        Language.EN: "Waiting for the other party to agree.",
    },
    PromptId.RECORDING_STARTED: {
        Language.NL: "De opname is gestart.",
        Language.EN: "The recording has started.",
    },
    PromptId.RECORDING_STOPPED: {
        Language.NL: "De opname is gestopt.",
        Language.EN: "The recording has stopped.",
    },
    PromptId.WINDOW_EXPIRED: {
        Language.NL: "Geen akkoord van beide partijen. Er wordt niet opgenomen.",
        Language.EN: "No agreement from both parties. Nothing is being recorded.",
    },
    PromptId.FAULT: {
        Language.NL: "Opnemen kan nu niet. Het lampje laat zien waarom.",
        Language.EN: "Recording is not possible right now. The light shows why.",
    },
    PromptId.COPY_CONFIRM: {
        Language.NL: "Wilt u een kopie? Druk dan allebei op akkoord.",
        Language.EN: "Would you like a copy? Then both press akkoord.",
    },
    PromptId.COPY_MADE: {
        Language.NL: "De kopie is klaar. U kunt de stick eruit halen.",
        Language.EN: "The copy is ready. You can take out the stick.",
    },
    PromptId.COPY_FAILED: {
        Language.NL: "De kopie is mislukt. Probeer een andere stick.",
        Language.EN: "The copy failed. Please try another stick.",
    },
    PromptId.NO_RECORDING: {
        Language.NL: "Er is geen opname om te kopiëren.",
        Language.EN: "There is no recording to copy.",
    },
    PromptId.COLLECT_CONFIRM: {
        Language.NL: "Verzamelstick van de organisatie. "
        "Druk op een knop om de opnames op te halen.",
        Language.EN: "Collection stick from the organisation. Press a button to collect the "
        "recordings.",
    },
    PromptId.COLLECT_DONE: {
        Language.NL: "De opnames zijn opgehaald. U kunt de stick verwijderen.",
        Language.EN: "The recordings have been collected. You can remove the stick.",
    },
    PromptId.COLLECT_FAILED: {
        Language.NL: "Ophalen mislukt. Er is niets verloren. Probeer een andere stick.",
        Language.EN: "Collecting failed. Nothing has been lost. Please try another stick.",
    },
    PromptId.COLLECT_RECORDINGS: {
        Language.NL: "Het geheugen is bijna vol. De organisatie moet de opnames ophalen.",
        Language.EN: "The memory is almost full. The organisation must collect the recordings.",
    },
}


def prompts_dir() -> Path:
    """The folder holding ``<language>/<id>.wav`` inside the installed package."""
    # The package is installed as plain files (setuptools package-data), so a path relative
    # to this module is a real file the audio player can open; no zip import to worry about.
    return Path(__file__).resolve().parent / "assets" / "prompts"


def prompt_path(prompt_id: PromptId | str, language: Language | str) -> Path:
    """Path of the WAV for a prompt in a language; ValueError for an unknown id or language."""
    pid = PromptId(prompt_id)
    lang = Language(language)
    return prompts_dir() / lang.value / f"{pid.value}.wav"


def prompt_text(prompt_id: PromptId | str, language: Language | str) -> str:
    """The sentence a prompt speaks."""
    return TEXTS[PromptId(prompt_id)][Language(language)]


def _main(argv: list[str]) -> int:
    """Print ``language<TAB>id<TAB>text`` lines for scripts/make_prompts.sh."""
    if argv:
        print("usage: python -m akkoord.prompts", file=sys.stderr)
        return 2
    for language in LANGUAGES:
        for pid in PromptId:
            print(f"{language.value}\t{pid.value}\t{TEXTS[pid][language]}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
