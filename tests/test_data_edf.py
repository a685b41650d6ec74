"""Shared EDF helpers: header (start time), signals by name at the native rate, annotations, damage."""
import datetime as dt

import numpy as np
import pyedflib
import pytest

from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.channels import match_channels
from eegmamba_cli.data.edf import EdfSignals, read_annotations, read_header
from tests.fixtures.edf import START, corrupt_header, tone, truncate, write_edf


def test_real_sleepedf_psg_header(realdata):
    h = read_header(realdata / "sleep-edf/excerpt/SC4001E0-PSG.edf")
    assert h.start == dt.datetime(1989, 4, 24, 16, 13, 0) and h.start_seconds_of_day == 16 * 3600 + 13 * 60
    assert h.labels[0] == "EEG Fpz-Cz" and h.n_signals == 7 and not h.is_edfplus
    assert h.n_records == 10 and h.record_s == 30 and h.duration_s == 300
    assert [h.sfreq(i) for i in range(7)] == [100, 100, 100, 1, 1, 1, 1]


def test_real_signal_matches_pyedflib_at_native_rate(realdata):
    path = realdata / "sleep-edf/excerpt/SC4001E0-PSG.edf"
    h = read_header(path)
    sig = EdfSignals(h, match_channels(h.labels, ["EEG Fpz-Cz"], source=path.name))
    assert sig.sfreq == 100 and sig.shape == (1, 30000)  # never upsampled to another channel's rate
    with pyedflib.EdfReader(str(path)) as ref:
        np.testing.assert_allclose(sig[0], ref.readSignal(0), atol=1e-4)


def test_real_hypnogram_annotations(realdata):
    path = realdata / "sleep-edf/excerpt/SC4001EC-Hypnogram.edf"
    h = read_header(path)  # EDF+C, annotation-only, records of duration 0: accepted
    assert h.is_edfplus and h.record_s == 0 and h.labels == ("EDF Annotations",)
    ann = read_annotations(path)
    assert len(ann) == 154
    assert (ann[0].onset, ann[0].duration, ann[0].text) == (0, 30630, "Sleep stage W")
    assert (ann[-1].onset, ann[-1].duration, ann[-1].text) == (79500, 6900, "Sleep stage ?")
    assert ann[-1].onset + ann[-1].duration == 86400


def _tiny(path, seconds=4):
    return write_edf(path, ["EEG C3", "EEG C4"], [128, 128], [tone(3, 128, seconds), tone(5, 128, seconds)],
                     start=START)


def test_truncated_file_named_in_one_line(tmp_path):
    path = _tiny(tmp_path / "a.edf")
    truncate(path, path.stat().st_size - 100)
    with pytest.raises(RecordingError, match=r"^a\.edf: truncated \(header declares 4 data records, the file holds 3"):
        read_header(path)


def test_corrupt_and_unreadable_files(tmp_path):
    path = corrupt_header(_tiny(tmp_path / "b.edf"))
    with pytest.raises(RecordingError, match=r"^b\.edf: not an EDF/BDF file"):
        read_header(path)
    (tmp_path / "c.edf").write_bytes(b"0       short")
    with pytest.raises(RecordingError, match=r"^c\.edf: not an EDF file \(only 13 bytes\)"):
        read_header(tmp_path / "c.edf")
    (tmp_path / "d.edf").mkdir()
    with pytest.raises(RecordingError, match=r"^d\.edf: cannot read"):
        read_header(tmp_path / "d.edf")
    data = bytearray(_tiny(tmp_path / "e.edf").read_bytes())
    data[236:244] = b"abc     "
    (tmp_path / "e.edf").write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=r"^e\.edf: corrupt EDF header \(number of data records is 'abc'\)"):
        read_header(tmp_path / "e.edf")


def test_lazy_rows_and_units(tmp_path):
    path = write_edf(tmp_path / "mv.edf", ["EEG C3"], [100], [tone(2, 100, 3, amplitude=0.05)], start=START,
                     physical=[(-0.1, 0.1)], units="mV")
    h = read_header(path)
    sig = EdfSignals(h, [0])
    assert sig.shape == (1, 300) and sig.dtype == np.float32
    assert 49 < np.abs(sig[0]).max() <= 50.01  # mV -> µV
    np.testing.assert_array_equal(np.asarray(sig)[0], sig[0])
