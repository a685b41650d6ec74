"""Channel matching for `predict`: aliases, reference suffixes, bipolar derivations, the channel-map file."""
from __future__ import annotations

import json

import pytest

from eegmamba_cli.console import UserError
from eegmamba_cli.data.corpora import bciiv2a, chbmit, siena
from eegmamba_cli.channels import normalise_label as key
from eegmamba_cli.predict.channels import ChannelMatcher, read_channel_map, referential_key


def match(labels, expected, **kwargs):
    return ChannelMatcher(labels, source="rec.edf", **kwargs).match(expected)


def described(labels, expected, **kwargs):
    return {s.expected: (s.describe(labels), s.how) for s in match(labels, expected, **kwargs)}


def test_keys_ignore_case_spaces_prefix_and_old_names():
    assert key("EEG Fp1") == key("fp1") == "FP1"
    assert key("EEG T3") == key("T7") == "T7"
    assert key("T4") == "T8" and key("T5") == "P7" and key("T6") == "P8"
    assert key("EEG Fpz - Cz") == "FPZ-CZ"
    assert key("EEG-Fz") == "FZ"  # BCI IV 2a style prefix
    assert key("EEG") == "EEG"  # SHHS's bare label is not a prefix


@pytest.mark.parametrize("label,electrode", [
    ("EEG FP1-REF", "FP1"), ("Fp1-Ref", "FP1"), ("EEG C3-LE", "C3"), ("C3-A2", "C3"), ("O2-M1", "O2"),
    ("EEG T3-REF", "T7"), ("Cz", "CZ"), ("FP1-F7", None), ("T7-FT9", None)])
def test_referential_key(label, electrode):
    assert referential_key(label) == electrode


def test_old_and_new_10_20_names_match_both_ways():
    # Siena's head expects old names (T3, T5); a file with new names still matches.
    labels = ["EEG T7", "EEG P7", "EEG T8", "EEG P8"]
    found = described(labels, ["T3", "T5", "T4", "T6"])
    assert found == {"T3": ("EEG T7", "alias"), "T5": ("EEG P7", "alias"), "T4": ("EEG T8", "alias"),
                     "T6": ("EEG P8", "alias")}


def test_reference_suffixes_and_exact_names():
    labels = ["EEG FP1-REF", "EEG fp2-ref", "Fz", "EKG EKG"]
    found = described(labels, ["Fp1", "Fp2", "Fz"])
    assert found["Fp1"] == ("EEG FP1-REF", "reference")
    assert found["Fp2"] == ("EEG fp2-ref", "reference")
    assert found["Fz"] == ("Fz", "name")


def test_exact_derivation_wins_over_its_reference_reading():
    # SHHS's C4-A1: the derivation itself, not "C4 referenced to A1" read as C4.
    found = described(["C3-A2", "C4-A1"], ["C4-A1"])
    assert found == {"C4-A1": ("C4-A1", "name")}


def test_chbmit_bipolar_from_referential():
    electrodes = sorted({e for pair in chbmit.CHANNELS for e in pair.split("-")})
    labels = [f"EEG {e.title()}-REF" for e in electrodes] + ["ECG"]
    sources = match(labels, list(chbmit.CHANNELS))
    assert len(sources) == 23 and all(s.how == "bipolar" for s in sources)
    first = sources[0]
    assert (labels[first.plus], labels[first.minus]) == ("EEG Fp1-REF", "EEG F7-REF")
    assert sources[14].describe(labels) == sources[22].describe(labels) == "EEG T8-REF − EEG P8-REF"


def test_chbmit_duplicate_labels_take_their_own_channels():
    labels = list(chbmit.CHANNELS[:4]) + ["-"] + list(chbmit.CHANNELS[4:]) + ["-"]
    sources = match(labels, list(chbmit.CHANNELS))
    t8 = [s.plus for s in sources if s.expected == "T8-P8"]
    assert t8 == [i for i, label in enumerate(labels) if label == "T8-P8"] and len(set(t8)) == 2


def test_siena_head_from_a_modern_montage():
    labels = [f"EEG {c}-REF" for c in ("Fp1", "F3", "C3", "P3", "O1", "F7", "T7", "P7", "FC1", "FC5", "CP1",
                                        "CP5", "F9", "Fz", "Cz", "Pz", "Fp2", "F4", "C4", "P4", "O2", "F8",
                                        "T8", "P8", "FC2", "FC6", "CP2", "CP6", "F10")]
    sources = match(labels, list(siena.CHANNELS))
    assert [labels[s.plus] for s in sources] == labels  # same order, every channel found


def test_corpus_labels_shhs_and_bci():
    assert described(["SaO2", "EEG(sec)", "EEG"], ["C4-A1"], corpus_labels={"EEG": "C4-A1"}) == \
        {"C4-A1": ("EEG", "corpus label")}
    labels = [*bciiv2a.GDF_LABELS, *bciiv2a.EOG_LABELS]
    sources = match(labels, list(bciiv2a.GDF_LABELS.values()), corpus_labels=dict(bciiv2a.GDF_LABELS))
    assert [labels[s.plus] for s in sources] == list(bciiv2a.GDF_LABELS)


def test_missing_channels_one_line_naming_need_and_file():
    with pytest.raises(UserError) as err:
        match(["EEG Fp1", "EEG F3", "ECG"], ["Fp1", "F3", "C3", "O2"])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("rec.edf: missing 2 of 4 channels the model needs (C3, O2)")
    assert "the file has EEG Fp1, EEG F3, ECG" in message and "--channel-map" in message


def test_bipolar_needs_both_electrodes():
    with pytest.raises(UserError, match=r"missing 1 of 1 channels .*\(FP1-F7\)"):
        match(["EEG FP1-REF", "EEG F3-REF"], ["FP1-F7"])


def test_channel_map_json_and_tsv(tmp_path):
    labels = ["Chan 1", "Chan 2", "Chan 3"]
    as_json = tmp_path / "map.json"
    as_json.write_text(json.dumps({"Fp1": "chan 1", "FZ-CZ": ["Chan 2", "Chan 3"]}))
    as_tsv = tmp_path / "map.tsv"
    as_tsv.write_text("expected\tfile\n# a comment\nFp1\tChan 1\nFZ-CZ\tChan 2\tChan 3\n")
    for path in (as_json, as_tsv):
        found = described(labels, ["Fp1", "FZ-CZ"], channel_map=read_channel_map(path))
        assert found == {"Fp1": ("Chan 1", "map"), "FZ-CZ": ("Chan 2 − Chan 3", "map")}


def test_channel_map_overrides_automatic_matching(tmp_path):
    # The file has a Cz, but the user says the model's Cz is "Vertex".
    found = described(["Cz", "Vertex"], ["Cz"], channel_map={"Cz": ("Vertex",)})
    assert found == {"Cz": ("Vertex", "map")}


def test_channel_map_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="'Nope' \\(for Fp1\\) is not a channel of rec.edf"):
        match(["A", "B"], ["Fp1"], channel_map={"Fp1": ("Nope",)})
    with pytest.raises(UserError, match="channel map: XYZ not among the channels the model expects"):
        match(["A"], ["Fp1"], channel_map={"XYZ": ("A",)})
    bad = tmp_path / "bad.tsv"
    bad.write_text("Fp1\n")
    with pytest.raises(UserError, match=r"bad.tsv:1: expected"):
        read_channel_map(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        read_channel_map(broken)
