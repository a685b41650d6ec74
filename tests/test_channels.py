"""The one channel-name normalisation and 10-20 alias table, as the corpus readers and predict use them."""
from __future__ import annotations

import numpy as np
import pyedflib
import pytest

from eegmamba_cli.channels import RENAMED_10_20, match_channels, normalise_label
from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.custom import CORPUS as CUSTOM
from eegmamba_cli.data.edf import read_header
from eegmamba_cli.predict.channels import ChannelMatcher

EEGMMIDB_RUN = "eegmmidb/S001/S001R04.edf"  # BCI2000 labels: `Fc5.`, `Cz..`, `T10.`, 160 Hz


@pytest.mark.parametrize("old,new", sorted(RENAMED_10_20.items()))
def test_old_and_new_10_20_names_find_each_other_both_ways(old, new):
    assert normalise_label(old) == normalise_label(new.lower()) == new
    assert match_channels(["Cz", f"EEG {new}"], [old], source="x") == [1]
    assert match_channels(["Cz", f"EEG {old}"], [new], source="x") == [1]
    # predict's matcher uses the same table: a head trained on either spelling reads a file with the other
    for file_label, expected in ((f"EEG {new}", old), (f"EEG {old}", new)):
        (source,) = ChannelMatcher(["Cz", file_label], source="x").match([expected])
        assert (source.plus, source.how) == (1, "alias")


def test_derivations_rename_each_electrode():
    assert normalise_label("EEG Fp1 - T3") == normalise_label("FP1-T7") == "FP1-T7"
    assert normalise_label("T5-O1") == "P7-O1" and normalise_label("T9") == "T9"  # T9/T10 were never renamed


def test_case_prefix_and_duplicates():
    labels = ["EEG FP1", "EEG Fc1", "EKG EKG", "EEG T7", "T8-P8", "-", "T8-P8"]
    assert match_channels(labels, ["Fp1", "FC1"], source="x") == [0, 1]
    assert match_channels(labels, ["T8-P8", "T8-P8"], source="x") == [4, 6]  # k-th wanted, k-th found
    with pytest.raises(RecordingError, match=r"^x: missing 2 of 4 channels \(Cz, T8-P8\)$"):
        match_channels(labels, ["T8-P8", "Cz", "T8-P8", "T8-P8"], source="x")  # a third copy is missing
    assert normalise_label("  EEG Fpz-Cz ") == "FPZ-CZ" and normalise_label("EEG-Fz") == "FZ"
    assert normalise_label("EEG") == "EEG"  # SHHS's bare label is a name, not a prefix


def test_bci2000_dotted_names_from_a_real_eegmmidb_header(realdata):
    header = read_header(realdata / EEGMMIDB_RUN)
    labels = header.labels
    assert labels[:2] == ("Fc5.", "Fc3.") and labels[10] == "Cz.." and labels[43] == "T10."
    assert match_channels(labels, ["FC5", "Cz", "Fp1", "T10", "Iz", "T3"], source="S001R04.edf") == \
        [0, 10, 21, 43, 63, 40]
    names = [normalise_label(label) for label in labels[:64]]
    assert len(set(names)) == 64 and not any(name.endswith(".") for name in names)
    # predict counts a dotted label as the name itself, not an alias
    sources = ChannelMatcher(labels, source="S001R04.edf").match(["Fc5", "CZ", "T3"])
    assert [(s.plus, s.how) for s in sources] == [(0, "name"), (10, "name"), (40, "alias")]


def test_custom_corpus_reads_dotted_channels_by_their_plain_names(realdata, tmp_path):
    raw = tmp_path / "raw" / "sub-001"
    raw.mkdir(parents=True)
    (raw / "S001R04.edf").symlink_to(realdata / EEGMMIDB_RUN)
    corpus = CUSTOM.bind(tmp_path / "raw", CUSTOM.Options(labels="T1,T2", channels="FC5,Cz,Fp1", window=4.0))
    (ref,) = corpus.find_recordings(tmp_path / "raw")
    (piece,) = corpus.read(ref).pieces
    assert piece.data.shape == (3, 20000) and piece.sfreq == 160
    assert [label for _, label in piece.windows] == [1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0]
    with pyedflib.EdfReader(str(realdata / EEGMMIDB_RUN)) as reader:
        for row, index in zip(piece.data, (0, 10, 21)):
            np.testing.assert_allclose(row, reader.readSignal(index), atol=1e-3)
