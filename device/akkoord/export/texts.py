"""The notice that goes with every copy: LEESMIJ.txt (Dutch) and README.txt (English).

Plain language for a parent and a professional: what this copy is, that it was made with
both present, what rules 4-6 of the National Ombudsman mean for whoever holds it, and how to
check it. Facts come from the signed manifest, so the notice cannot say more than the record.
"""

from __future__ import annotations

from typing import Any

from akkoord.store.keys import fingerprint_display

__all__ = ["notice_en", "notice_nl"]

_REASON_NL = {
    "party_a": "partij A drukte op de knop",
    "party_b": "partij B drukte op de knop",
    "shutdown": "het apparaat werd uitgeschakeld",
    "disk_full": "het geheugen van het apparaat was vol",
    "microphone_lost": "de microfoon viel weg",
    "storage_error": "een opslagfout",
}
_REASON_EN = {
    "party_a": "party A pressed their button",
    "party_b": "party B pressed their button",
    "shutdown": "the device was shut down",
    "disk_full": "the device's storage was full",
    "microphone_lost": "the microphone was lost",
    "storage_error": "a storage error",
}


def _clock(t: dict[str, Any] | None) -> str:
    if not t:
        return "?"
    utc = str(t.get("utc", "?")).replace("T", " ").replace("Z", " UTC")
    return utc if t.get("clock") != "unsynchronized" else f"{utc} (klok niet gelijkgezet)"


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _gaps(manifest: dict[str, Any]) -> list[tuple[float, float]]:
    rate = manifest["audio"]["sample_rate"]
    return [(g[1] / rate, g[2] / rate) for g in manifest.get("gaps", [])]


def notice_nl(manifest: dict[str, Any], copy: dict[str, Any]) -> str:
    stop = manifest.get("stop") or {}
    lines = [
        "KOPIE VAN EEN GESPREKSOPNAME",
        "============================",
        "",
        f"Opname {manifest['recording_id']}, kopie nummer {copy['copy_number']}.",
        f"Begonnen: {_clock(manifest.get('created'))}. Lengte: "
        f"{_duration(manifest['duration_seconds'])}.",
    ]
    if manifest.get("status") == "interrupted":
        lines.append(
            "De opname werd onderbroken (stroomuitval of storing). Dat staat in de "
            "opname zelf vermeld; wat tot dat moment is opgenomen, is compleet."
        )
    elif stop:
        reason = _REASON_NL.get(stop.get("reason", ""), stop.get("reason", "?"))
        lines.append(f"Gestopt omdat {reason}.")
    for start, length in _gaps(manifest):
        lines.append(
            f"Let op: op seconde {start:.1f} ontbreekt {length:.2f} s geluid "
            "(het apparaat kon het niet bijhouden). Dat is stilte in het bestand en "
            "staat in de opname vermeld."
        )
    if copy.get("made_by") == "device":
        lines.append(
            "Deze kopie is gemaakt op het opnameapparaat, met akkoord van beide "
            "partijen, die daarvoor allebei op hun knop drukten."
        )
    else:
        lines.append("Deze kopie is later gemaakt door de organisatie uit haar archief.")
    if manifest.get("simulated"):
        lines.append("LET OP: dit is een proefopname uit de simulator, geen echt gesprek.")
    lines += [
        "",
        "Wat mag u met deze kopie? (spelregels van de Nationale ombudsman)",
        "- Regel 4: beide partijen hebben recht op een kopie. De andere partij heeft",
        "  dezelfde kopie gekregen, of kan die krijgen.",
        "- Regel 5: niemand knipt of plakt in de opname zonder dat te zeggen. Elke",
        "  verandering in deze kopie is na te gaan (zie hieronder).",
        "- Regel 6: de opname is niet bedoeld voor anderen. Geef haar niet aan derden,",
        "  zet haar niet op internet en maak haar niet openbaar zonder toestemming van",
        "  de andere partij.",
        "",
        "Controleren of de kopie onveranderd is:",
        "- Open verify.html in deze map met een webbrowser (werkt zonder internet) en",
        "  kies het bestand opname.wav. De pagina zegt of het geluid onveranderd is, en",
        "  zo niet, bij welke seconden het is veranderd.",
        "- Vergelijk de vingerafdruk van het apparaat met die op de website van de",
        f"  organisatie: {fingerprint_display(manifest['device']['fingerprint'])}",
        "- Of gebruik het programma akkoord:  akkoord verify <deze map>",
        "",
        "Bestanden: opname.wav (het geluid, speelt af op elke computer of telefoon),",
        "manifest.json en manifest.sig (de ondertekende beschrijving), copy.json,",
        "device.pub, custody-head.json (voor controle), verify.html (de controlepagina).",
        "",
    ]
    return "\n".join(lines)


def notice_en(manifest: dict[str, Any], copy: dict[str, Any]) -> str:
    stop = manifest.get("stop") or {}
    lines = [
        "COPY OF A RECORDED CONVERSATION",
        "===============================",
        "",
        f"Recording {manifest['recording_id']}, copy number {copy['copy_number']}.",
        f"Started: {_clock(manifest.get('created'))}. Length: "
        f"{_duration(manifest['duration_seconds'])}.",
    ]
    if manifest.get("status") == "interrupted":
        lines.append(
            "The recording was interrupted (power cut or fault). The recording says "
            "so itself; what was recorded up to that moment is complete."
        )
    elif stop:
        reason = _REASON_EN.get(stop.get("reason", ""), stop.get("reason", "?"))
        lines.append(f"Stopped because {reason}.")
    for start, length in _gaps(manifest):
        lines.append(
            f"Note: at second {start:.1f}, {length:.2f} s of sound is missing (the "
            "device could not keep up). It is silence in the file and disclosed in "
            "the recording."
        )
    if copy.get("made_by") == "device":
        lines.append(
            "This copy was made on the recording device with the agreement of both "
            "parties, who each pressed their button for it."
        )
    else:
        lines.append("This copy was made later by the organisation from its archive.")
    if manifest.get("simulated"):
        lines.append("NOTE: this is a test recording from the simulator, not a real meeting.")
    lines += [
        "",
        "What may you do with this copy? (the National Ombudsman's rules)",
        "- Rule 4: both parties are entitled to a copy. The other party received, or can",
        "  receive, the same copy.",
        "- Rule 5: nobody cuts or pastes in the recording without saying so. Any change",
        "  to this copy can be detected (see below).",
        "- Rule 6: the recording is not meant for others. Do not give it to third",
        "  parties, put it online or make it public without the other party's consent.",
        "",
        "Checking that the copy is unchanged:",
        "- Open verify.html in this folder in a web browser (works offline) and choose",
        "  opname.wav. The page says whether the sound is unchanged, and if not, at which",
        "  seconds it was changed.",
        "- Compare the device fingerprint with the one on the organisation's website:",
        f"  {fingerprint_display(manifest['device']['fingerprint'])}",
        "- Or use the akkoord program:  akkoord verify <this folder>",
        "",
    ]
    return "\n".join(lines)
