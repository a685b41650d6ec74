"""Load a pickled dict of numeric numpy arrays without letting the pickle run code.

DEAP ships its preprocessed data as Python 2 pickles (`sXX.dat`). A plain `pickle.load` calls whatever
callable the file names, so a tampered file could run `os.system` on load. This unpickler resolves only
the globals in `ALLOWED` below and refuses every other one before it is called. Dicts, tuples, strings
and numbers need no globals at all: they have their own opcodes.

The allowlist, and why each entry is there:

* `numpy.core.multiarray._reconstruct` (numpy 1.x and Python 2 spelling) and
  `numpy._core.multiarray._reconstruct` (numpy 2): `ndarray.__reduce__` names it to create the empty
  array that the pickle's state then fills. Only `ndarray` itself is accepted as the array type.
* `numpy.ndarray`: the array type passed to `_reconstruct`.
* `numpy.dtype`: an array's element type. Only booleans, integers, floats and complex numbers.
* `_codecs.encode`: Python 3 writes `bytes` as `_codecs.encode(text, 'latin1')` under protocols 0-2, so
  arrays re-saved by Python 3 with protocol 2 need it. Only the latin-1 codec is accepted.

Python 2's own pickles (the files users download) store the raw array bytes as `str`, which
`encoding='latin1'` turns back into the original bytes; numpy accepts that.
"""
from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import BinaryIO

import numpy as np

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _numpy_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _numpy_reconstruct

NUMERIC_KINDS = "biufc"  # bool, signed and unsigned integers, floats, complex
LATIN1_NAMES = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a callable outside the allowlist, or holds something other than numeric arrays."""


def _reconstruct(subtype, shape, dtype_code):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refused array type {subtype!r}")
    return _numpy_reconstruct(subtype, shape, dtype_code)


def _numeric_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec, align, copy)
    if dtype.kind not in NUMERIC_KINDS:
        raise UnsafePickleError(f"refused array element type {spec!r} (only numeric arrays are read)")
    return dtype


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    if not isinstance(text, str) or str(encoding).lower() not in LATIN1_NAMES:
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numeric_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that resolves only the globals in `ALLOWED`."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refused to load {module}.{name}: only numpy arrays in a dict "
                                    "are read from this file") from None

    def persistent_load(self, pid):
        raise UnsafePickleError("refused a persistent id: only numpy arrays in a dict are read")


def loads_restricted(data: bytes):
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def load_restricted(fh: BinaryIO):
    return RestrictedUnpickler(fh, encoding="latin1").load()


def load_array_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a pickled `{name: numeric ndarray}` file, refusing anything else.

    Raises UnsafePickleError for refused content and the usual pickle/OS errors for broken files.
    """
    with open(path, "rb") as fh:
        obj = load_restricted(fh)
    if not isinstance(obj, dict):
        raise UnsafePickleError(f"expected a dict of arrays, found {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise UnsafePickleError(f"expected text keys, found {key!r}")
        if not isinstance(value, np.ndarray) or value.dtype.kind not in NUMERIC_KINDS:
            raise UnsafePickleError(f"entry {key!r} is not a numeric array")
    return obj
