"""The manifest walk (store/manifest.walk_manifest, segments_of) that both the store's
verifier and the copy verifier use to read a manifest without building its segment list.

Its fallback (parse the whole text strictly) gives the same verdicts, so comparing verdicts
cannot show that the walk itself works. These tests pin the walk: on every document the
strict parsers accept, it returns (it does not fall back), with the same document and the
segment list located exactly; on what they refuse, it refuses; and a canonical list is never
parsed whole. That is what keeps memory from following the recording's length (issue 11).
"""

from __future__ import annotations

import json

import pytest

from akkoord.store import manifest as manifest_mod
from akkoord.store import safeio
from akkoord.store.manifest import segments_of, walk_manifest
from akkoord.trust import TrustError, loads_strict
from akkoord.trust import strict_decoder as trust_decoder

MAC = "0123456789abcdef" * 4
SEG = f'[0,0,48000,"{MAC}"]'

# name -> (manifest text, rules it is valid under: "both", "last-wins" (duplicates: only
# strict_json), "loads_strict" (a number past strict_json's range), "none")
DOCS: dict[str, tuple[str, str]] = {
    "canonical": (f'{{"a":1,"segments":[{SEG},[1,48000,24000,"{MAC}"]],"z":[1,2]}}', "both"),
    "segments first": (f'{{"segments":[{SEG}],"b":{{"c":[true,null,"é"]}}}}', "both"),
    "segments last": (f'{{"b":"x","segments":[{SEG}]}}', "both"),
    "no segments": ('{"a":{"segments":[1]},"b":-1.5}', "both"),
    "empty object": ("{}", "both"),
    "spaced empty object": (" {\n} \n", "both"),
    "empty list": ('{"segments":[],"a":0}', "both"),
    "spaced empty list": ('{"segments":[ \n\t],"a":0}', "both"),
    "spaced everywhere": (f' {{ "a" : 1 ,\n "segments" : [ {SEG} ,\t{SEG} ] , "b" : 2 }} ',
                          "both"),
    "odd entries": (f'{{"segments":[{SEG},[1, 2,3,"x"],{{"k":[1]}},7,"s",{SEG}]}}', "both"),
    "zero and big numbers": (f'{{"segments":[[0,999999999999999999,1,"{MAC}"]]}}', "both"),
    "19 digits in range": (f'{{"segments":[[0,9223372036854775807,1,"{MAC}"]]}}', "both"),
    "19 digits out of range": (f'{{"segments":[[0,9999999999999999999,1,"{MAC}"]]}}',
                               "loads_strict"),
    "segments not a list": ('{"segments":5,"a":[1]}', "both"),
    "segments an object": ('{"segments":{"0":[1]},"a":1}', "both"),
    "escaped key": (f'{{"segm\\u0065nts":[{SEG}],"\\"q":1}}', "both"),
    "unicode values": ('{"n\\u00e9":"\\ud83d\\ude00","segments":[]}', "both"),
    "raw UTF-8": ('{"é":"aé€😀b","segments":[],"€€":["😀😀",{"ü":"ß"}],"z":"😀"}', "both"),
    "duplicate key": ('{"a":1,"a":2,"segments":[]}', "last-wins"),
    "segments twice, list last": (f'{{"segments":3,"segments":[{SEG}]}}', "last-wins"),
    "segments twice, list first": (f'{{"segments":[{SEG}],"segments":3}}', "last-wins"),
    "segments twice, both lists": (f'{{"segments":[{SEG}],"x":0,"segments":[]}}', "last-wins"),
    "not an object": ("[1,2]", "none"),
    "a string": ('"x"', "none"),
    "empty": ("", "none"),
    "leading zero in a segment": (f'{{"segments":[[01,0,1,"{MAC}"]]}}', "none"),
    "leading zero elsewhere": ('{"a":01}', "none"),
    "trailing comma": ('{"a":1,}', "none"),
    "trailing comma in the list": (f'{{"segments":[{SEG},]}}', "none"),
    "missing colon": ('{"a" 1}', "none"),
    "key not a string": ("{1:2}", "none"),
    "unclosed": ('{"a":[1,2]', "none"),
    "unclosed list": (f'{{"segments":[{SEG}', "none"),
    "extra data": ('{"a":1} x', "none"),
    "two objects": ("{}{}", "none"),
    "an empty object and more": ("{}x", "none"),
    "an empty spaced object and more": ("{ }x", "none"),
    "NaN": ('{"segments":[NaN]}', "none"),
    "Infinity": ('{"a":Infinity}', "none"),
    "overflowing float": ('{"a":1e999}', "none"),
    "bad separator in the list": (f'{{"segments":[{SEG};{SEG}]}}', "none"),
    "bad separator in the object": ('{"a":1;"b":2}', "none"),
    "upper-case mac (not canonical, still JSON)": (f'{{"segments":[[0,0,1,"{MAC.upper()}"]]}}',
                                                   "both"),
}

RULES = {
    # name: (decoder, unique keys, the strict parser the walk stands in for)
    "loads_strict": (trust_decoder, True, lambda b: loads_strict(b, "m", limit=len(b) + 1)),
    "strict_json": (safeio.strict_decoder, False, lambda b: safeio.strict_json(b, "m")),
}


def _accepted(rule: str, valid: str) -> bool:
    return valid in ("both", rule) or (valid == "last-wins" and rule == "strict_json")


def _never(_text: bytes):
    raise AssertionError("a canonical segment list was parsed whole")


@pytest.mark.parametrize("window", [2, 7, 1 << 16])
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("name", sorted(DOCS))
def test_the_walk_reads_what_the_strict_parser_reads(name, rule, window, monkeypatch):
    monkeypatch.setattr(manifest_mod, "_WINDOW", window)  # values cut at every window edge
    text, valid = DOCS[name]
    data = text.encode()
    dec, unique, parse = RULES[rule]
    if not _accepted(rule, valid):
        try:
            strict = parse(data)
        except (ValueError, TrustError):
            strict = None
        assert not isinstance(strict, dict)  # refused, or not an object: what the case says
        with pytest.raises(ValueError):
            walk_manifest(data, dec(), unique_keys=unique)
        return
    want = parse(data)
    doc, span = walk_manifest(data, dec(), unique_keys=unique)  # no fallback
    segs = want.get("segments")
    if isinstance(segs, list):
        assert span is not None
        a, b = span
        assert data[a : a + 1] == b"[" and data[b - 1 : b] == b"]"
        assert json.loads(data[a:b]) == segs
        assert "segments" not in doc
        want.pop("segments")
    else:
        assert span is None
    assert doc == want
    got = list(segments_of(data, doc, span, parse))
    assert got == [tuple(s) if isinstance(s, list) else (s,) for s in segs or []] \
        if isinstance(segs, list) else got == []


@pytest.mark.parametrize("n", [0, 1, 2, 3, 50])
def test_a_canonical_list_is_walked_and_never_parsed_whole(n):
    entries = [[i, i * 48000, 48000, f"{i:064x}"] for i in range(n)]
    data = json.dumps({"audio": {}, "segments": entries, "z": 1},
                      separators=(",", ":")).encode()
    for dec, unique in ((trust_decoder(), True), (safeio.strict_decoder(), False)):
        doc, span = walk_manifest(data, dec, unique_keys=unique)
        assert doc == {"audio": {}, "z": 1}
        assert data[span[0] : span[1]] == json.dumps(entries, separators=(",", ":")).encode()
        assert list(segments_of(data, doc, span, _never)) == [tuple(e) for e in entries]


@pytest.mark.parametrize("odd_at", [0, 1, 2])
def test_the_list_is_parsed_whole_from_the_first_entry_that_is_not_canonical(odd_at):
    entries: list = [[i, i, 1, MAC] for i in range(3)]
    entries[odd_at] = [odd_at, odd_at, 1.0, MAC]  # a float: JSON, not canonical
    data = json.dumps({"segments": entries}, separators=(",", ":")).encode()
    doc, span = walk_manifest(data, safeio.strict_decoder(), unique_keys=False)
    parsed: list[bytes] = []

    def parse(text: bytes):
        parsed.append(text)
        return json.loads(text)

    got = list(segments_of(data, doc, span, parse))
    assert got == [tuple(e) for e in entries]
    assert parsed == [data[span[0] : span[1]]]  # once, the list exactly


def test_segments_held_in_the_document_come_as_tuples():
    doc = {"segments": [[1, 2, 3, "m"], 7, "s"]}
    assert list(segments_of(b"", doc, None, _never)) == [(1, 2, 3, "m"), (7,), ("s",)]
    assert list(segments_of(b"", {"segments": {"a": 1}}, None, _never)) == []
    assert list(segments_of(b"", {}, None, _never)) == []


@pytest.mark.parametrize("window", range(1, 12))
@pytest.mark.parametrize("rule", sorted(RULES))
def test_characters_cut_at_the_window_s_edge_are_read_whole(rule, window, monkeypatch):
    """The walk decodes a window of bytes at a time; a 2-, 3- or 4-byte character cut at
    its edge is read on, never taken as an error, at every cut."""
    monkeypatch.setattr(manifest_mod, "_WINDOW", window)
    dec, unique, parse = RULES[rule]
    for pad in range(4):
        data = ('{"' + "a" * pad + '":"é€😀","x":["😀€é"],"segments":[],"z":"€"}').encode()
        doc, span = walk_manifest(data, dec(), unique_keys=unique)
        want = parse(data)
        want.pop("segments")
        assert doc == want and data[span[0] : span[1]] == b"[]"


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80"])
@pytest.mark.parametrize("window", [1, 2, 3, 1 << 16])
def test_bytes_that_are_not_utf8_are_refused_wherever_they_fall(bad, window, monkeypatch):
    monkeypatch.setattr(manifest_mod, "_WINDOW", window)
    for where in (b'{"a":"' + bad + b'","segments":[]}', b'{"a":"x' + bad + b'"}',
                  b'{"a":1}' + bad, b'{"segments":[],"' + bad + b'":1}'):
        for dec, unique, _ in RULES.values():
            with pytest.raises(ValueError):
                walk_manifest(where, dec(), unique_keys=unique)
