"""The restricted unpickler: numeric arrays in a dict load; nothing else runs or loads."""
import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eegmamba_cli.data.safe_pickle import ALLOWED, UnsafePickleError, load_array_dict, loads_restricted
from tests.fixtures.deap import py2_pickle


def test_the_allowlist_is_exactly_these_globals():
    assert set(ALLOWED) == {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }


def test_python2_pickle_of_arrays_loads_exactly():
    arrays = {"labels": np.array([[4.5, 7.0, 3.0, 5.0]]), "data": np.arange(24, dtype=np.float32).reshape(2, 3, 4)}
    loaded = loads_restricted(py2_pickle(arrays))
    assert sorted(loaded) == ["data", "labels"]
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


def test_python3_protocol2_pickle_loads_through_codecs_encode():
    arrays = {"data": np.linspace(-1, 1, 10).reshape(2, 5), "n": np.array([3], dtype=np.int16)}
    raw = pickle.dumps(arrays, protocol=2)
    assert b"_codecs" in raw  # Python 3 writes bytes as _codecs.encode under protocol 2
    loaded = loads_restricted(raw)
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int16, np.uint8]),
                  shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)))
def test_any_numeric_array_round_trips_through_both_pickle_styles(array):
    for raw in (py2_pickle({"a": array}), pickle.dumps({"a": array}, protocol=2)):
        loaded = loads_restricted(raw)["a"]
        assert loaded.dtype == array.dtype and loaded.shape == array.shape
        np.testing.assert_array_equal(loaded, array)


class _Payload:
    """Unpickling this calls `function(*args)`: the classic pickle attack."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_reduce_payload_is_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "pwned"
    raw = pickle.dumps({"data": _Payload(os.system, f"touch {marker}")}, protocol=protocol)
    with pytest.raises(UnsafePickleError, match=r"refused to load (posix|os|nt)\.system"):
        loads_restricted(raw)
    assert not marker.exists()


@pytest.mark.parametrize("function", [eval, exec, getattr, open, __import__, np.load, np.frombuffer])
def test_other_callables_are_refused(function, tmp_path):
    raw = pickle.dumps(_Payload(function, "1"), protocol=2)
    with pytest.raises(UnsafePickleError, match="refused to load"):
        loads_restricted(raw)


def test_object_arrays_are_refused():
    raw = pickle.dumps({"data": np.array([1, "x"], dtype=object)}, protocol=2)
    with pytest.raises(UnsafePickleError, match="element type"):
        loads_restricted(raw)


def test_codecs_encode_only_with_latin1():
    raw = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(UnsafePickleError, match="rot13"):
        loads_restricted(raw)


def test_reconstruct_only_builds_plain_ndarrays():
    raw = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\n"
           b"cnumpy\ndtype\nK\x00\x85U\x01b\x87R.")  # _reconstruct(numpy.dtype, (0,), 'b')
    with pytest.raises(UnsafePickleError, match="array type"):
        loads_restricted(raw)


def test_load_array_dict_wants_a_dict_of_numeric_arrays(tmp_path):
    path = tmp_path / "x.dat"
    path.write_bytes(pickle.dumps([np.zeros(2)], protocol=2))
    with pytest.raises(UnsafePickleError, match="expected a dict"):
        load_array_dict(path)
    path.write_bytes(pickle.dumps({"data": 3}, protocol=2))
    with pytest.raises(UnsafePickleError, match="not a numeric array"):
        load_array_dict(path)
    path.write_bytes(py2_pickle({"data": np.ones((2, 2))}))
    np.testing.assert_array_equal(load_array_dict(path)["data"], np.ones((2, 2)))
