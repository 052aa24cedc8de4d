"""The notice that goes with every copy: LEESMIJ.txt (Dutch) and README.txt (English).

Plain language for a parent and a professional: what this copy is, that it was made with
both present, what rules 4-6 of the National Ombudsman mean for whoever holds it, and how to
check it. Facts come from the signed manifest, so the notice cannot say more than the record.
Times are local (Netherlands) with the zone named; the files themselves keep UTC. Parties are
named by the role the device recorded for their button. The file list names only what this
copy holds.
"""

from __future__ import annotations

import textwrap
from typing import Any

from akkoord.export.wording import (
    clock_position,
    duration_en,
    duration_nl,
    party_en,
    party_nl,
    seconds_en,
    seconds_nl,
)
from akkoord.localtime import local_en, local_nl
from akkoord.store.keys import fingerprint_display

__all__ = ["DEFAULT_FILES", "notice_en", "notice_nl"]

#: What a copy made on the device holds, in the order the notice lists it.
DEFAULT_FILES = ("opname.wav", "manifest.json", "manifest.sig", "copy.json", "device.pub",
                 "custody-head.json", "LEESMIJ.txt", "README.txt", "verify.html")

_FILES_NL = {
    "opname.wav": "het geluid; af te spelen op elke computer of telefoon",
    "manifest.json": "de beschrijving van de opname, door het apparaat ondertekend",
    "manifest.sig": "de handtekening van het apparaat onder die beschrijving",
    "copy.json": "gegevens van deze kopie, nodig voor de controle",
    "device.pub": "de openbare sleutel van het apparaat, nodig voor de controle",
    "custody-head.json": "het nummer van deze kopie in het logboek van het apparaat",
    "LEESMIJ.txt": "deze tekst",
    "README.txt": "deze tekst in het Engels",
    "verify.html": "de controlepagina; opent in elke webbrowser, ook zonder internet",
}
_FILES_EN = {
    "opname.wav": "the sound; plays on any computer or phone",
    "manifest.json": "the description of the recording, signed by the device",
    "manifest.sig": "the device's signature on that description",
    "copy.json": "details of this copy, needed for the check",
    "device.pub": "the device's public key, needed for the check",
    "custody-head.json": "this copy's place in the device's log",
    "LEESMIJ.txt": "this text in Dutch",
    "README.txt": "this text",
    "verify.html": "the checking page; opens in any web browser, also offline",
}

_REASON_NL = {
    "shutdown": "het apparaat werd uitgezet",
    "disk_full": "het geheugen van het apparaat vol was",
    "microphone_lost": "de microfoon het niet meer deed",
    "storage_error": "het apparaat de opname niet meer kon opslaan",
}
_REASON_EN = {
    "shutdown": "the device was switched off",
    "disk_full": "the device's storage was full",
    "microphone_lost": "the microphone stopped working",
    "storage_error": "the device could no longer store the recording",
}


def _stop_nl(manifest: dict[str, Any]) -> str | None:
    reason = str((manifest.get("stop") or {}).get("reason", ""))
    if not reason:
        return None
    if reason in ("party_a", "party_b"):
        who = party_nl(manifest, reason[-1])
        return f"De opname is gestopt omdat {who} op de akkoord-knop drukte."
    return f"De opname is gestopt omdat {_REASON_NL.get(reason, reason)}."


def _stop_en(manifest: dict[str, Any]) -> str | None:
    reason = str((manifest.get("stop") or {}).get("reason", ""))
    if not reason:
        return None
    if reason in ("party_a", "party_b"):
        return f"The recording stopped because {party_en(manifest, reason[-1])} pressed their " \
               "akkoord button."
    return f"The recording stopped because {_REASON_EN.get(reason, reason)}."


def _gaps(manifest: dict[str, Any]) -> list[tuple[float, float]]:
    rate = manifest["audio"]["sample_rate"]
    return [(g[1] / rate, g[2] / rate) for g in manifest.get("gaps", [])]


def _clock_unset(manifest: dict[str, Any]) -> bool:
    return (manifest.get("created") or {}).get("clock") == "unsynchronized"


def _wrap(lines: list[str]) -> str:
    """Paragraphs wrapped at 78 columns, as a text editor or a phone shows them best."""
    out: list[str] = []
    for line in lines:
        if len(line) <= 80 or line.startswith("  "):
            out.append(line)
        else:
            indent = "  " if line.startswith("- ") else ""
            out += textwrap.wrap(line, 78, subsequent_indent=indent, break_on_hyphens=False)
    return "\n".join(out)


def _file_lines(files: tuple[str, ...] | list[str], texts: dict[str, str]) -> list[str]:
    width = max(len(f) for f in files)
    return [f"  {f:<{width}}  {texts.get(f, '')}".rstrip() for f in files]


def notice_nl(manifest: dict[str, Any], copy: dict[str, Any],
              files: tuple[str, ...] | list[str] = DEFAULT_FILES) -> str:
    created = (manifest.get("created") or {}).get("utc")
    lines = [
        "KOPIE VAN EEN GESPREKSOPNAME",
        "============================",
        "",
        f"Opgenomen op {local_nl(created)}.",
        f"Lengte: {duration_nl(manifest['duration_seconds'])}.",
        f"Dit is kopie nummer {copy['copy_number']} van opname {manifest['recording_id']}.",
    ]
    if _clock_unset(manifest):
        lines.append("Let op: de klok van het apparaat was niet gelijkgezet; de datum en tijd "
                     "kunnen dus afwijken. De opname zelf is daardoor niet minder betrouwbaar.")
    lines.append("")
    if manifest.get("status") == "interrupted":
        lines.append(
            "De opname werd onderbroken, bijvoorbeeld doordat de stroom uitviel. Dat staat "
            "in de opname zelf vermeld; alles wat tot dat moment is opgenomen, is compleet."
        )
    elif (stop := _stop_nl(manifest)) is not None:
        lines.append(stop)
    for start, length in _gaps(manifest):
        lines.append(
            f"Let op: bij {clock_position(start)} in de opname ontbreekt "
            f"{seconds_nl(length)} geluid, omdat het apparaat het even niet bijhield. Op die "
            "plek hoort u stilte. Dat staat ook in de opname zelf vermeld."
        )
    if copy.get("made_by") == "device":
        lines.append(
            "Deze kopie is op het opnameapparaat gemaakt, met akkoord van beide partijen: "
            f"{party_nl(manifest, 'A')} en {party_nl(manifest, 'B')} drukten daarvoor allebei "
            "op hun knop."
        )
    else:
        lines.append("Deze kopie is later door de organisatie gemaakt, uit haar archief.")
    if manifest.get("simulated"):
        lines.append("LET OP: dit is een proefopname uit de simulator, geen echt gesprek.")
    lines += [
        "",
        "Wat mag u met deze kopie? (spelregels van de Nationale ombudsman)",
        "- Regel 4: beide partijen hebben recht op een kopie. De andere partij heeft",
        "  dezelfde kopie gekregen, of kan die nog krijgen.",
        "- Regel 5: niemand knipt of plakt in de opname zonder dat te zeggen. Elke",
        "  verandering in deze kopie is terug te vinden (zie hieronder).",
        "- Regel 6: de opname is niet bedoeld voor anderen. Geef haar niet aan derden,",
        "  zet haar niet op internet en maak haar niet openbaar zonder toestemming van",
        "  de andere partij.",
        "",
        "Nagaan of de kopie onveranderd is:",
        "- Het beste: open de controlepagina op de website van de organisatie en sleep",
        "  deze map erheen (er gaat niets over internet). Die pagina zegt of het geluid",
        "  onveranderd is, en zo niet, bij welke seconden; en of het apparaat van de",
        "  organisatie is.",
        "- Of open verify.html uit deze map in een webbrowser en kies opname.wav. Die",
        "  controleert het geluid net zo, maar kan niet vaststellen wie de kopie maakte:",
        "  vergelijk daarvoor de vingerafdruk van het apparaat met die op de website",
        f"  van de organisatie: {fingerprint_display(manifest['device']['fingerprint'])}",
        "- Of gebruik het programma akkoord:  akkoord verify <deze map>",
        "Laat de bestanden in deze map zoals ze zijn: dan blijft de controle werken.",
        "",
        "In deze map:",
        *_file_lines(files, _FILES_NL),
        "",
    ]
    return _wrap(lines)


def notice_en(manifest: dict[str, Any], copy: dict[str, Any],
              files: tuple[str, ...] | list[str] = DEFAULT_FILES) -> str:
    created = (manifest.get("created") or {}).get("utc")
    lines = [
        "COPY OF A RECORDED CONVERSATION",
        "===============================",
        "",
        f"Recorded on {local_en(created)}.",
        f"Length: {duration_en(manifest['duration_seconds'])}.",
        f"This is copy number {copy['copy_number']} of recording {manifest['recording_id']}.",
    ]
    if _clock_unset(manifest):
        lines.append("Note: the device's clock had not been set, so the date and time may be "
                     "off. This does not make the recording itself less reliable.")
    lines.append("")
    if manifest.get("status") == "interrupted":
        lines.append(
            "The recording was interrupted, for example by a power cut. The recording says "
            "so itself; everything recorded up to that moment is complete."
        )
    elif (stop := _stop_en(manifest)) is not None:
        lines.append(stop)
    for start, length in _gaps(manifest):
        lines.append(
            f"Note: at {clock_position(start)} into the recording, {seconds_en(length)} of "
            "sound is missing because the device briefly could not keep up. You hear silence "
            "there. The recording discloses this itself."
        )
    if copy.get("made_by") == "device":
        lines.append(
            "This copy was made on the recording device with the agreement of both parties: "
            f"{party_en(manifest, 'A')} and {party_en(manifest, 'B')} each pressed their "
            "button for it."
        )
    else:
        lines.append("This copy was made later by the organisation, from its archive.")
    if manifest.get("simulated"):
        lines.append("NOTE: this is a test recording from the simulator, not a real meeting.")
    lines += [
        "",
        "What may you do with this copy? (the National Ombudsman's rules)",
        "- Rule 4: both parties are entitled to a copy. The other party received, or can",
        "  still receive, the same copy.",
        "- Rule 5: nobody cuts or pastes in the recording without saying so. Any change",
        "  to this copy can be found (see below).",
        "- Rule 6: the recording is not meant for others. Do not give it to third",
        "  parties, put it online or make it public without the other party's consent.",
        "",
        "Checking that the copy is unchanged:",
        "- Best: open the verify page on the organisation's website and drop this",
        "  folder onto it (nothing goes over the internet). It says whether the sound",
        "  is unchanged, and if not, at which seconds; and whether the device is the",
        "  organisation's.",
        "- Or open verify.html from this folder in a web browser and choose opname.wav.",
        "  It checks the sound the same way but cannot tell who made the copy: for that,",
        "  compare the device fingerprint with the one on the organisation's website:",
        f"  {fingerprint_display(manifest['device']['fingerprint'])}",
        "- Or use the akkoord program:  akkoord verify <this folder>",
        "Keep the files in this folder as they are, so the check keeps working.",
        "",
        "In this folder:",
        *_file_lines(files, _FILES_EN),
        "",
    ]
    return _wrap(lines)
