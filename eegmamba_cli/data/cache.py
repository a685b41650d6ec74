"""The preprocessed window cache: what `eegmamba preprocess` writes and `eegmamba train` memory-maps.

Layout of one dataset's cache, `<root>/<dataset>/`:

    arrays/<recording>.npy     float32 (n_windows, C, L): the windows of one recording, in time order;
                               a window shorter than L (manifest `length`) is zero-padded at the end
    parts/<recording>.parquet  that recording's manifest rows; written after its array, so its presence
                               marks the recording as done (a resumed run skips it)
    manifest.parquet           all parts concatenated, one row per window (MANIFEST_COLUMNS)
    info.json                  written last: dataset, task, channels, sfreq, window_samples, class_names,
                               params, fingerprint, version, counts, skipped recordings

Every file is written to a temporary name and renamed, so a crash leaves either the old file or the new
one. A cache is *finished* when info.json exists; readers refuse anything else. Caches written before
the manifest had `run`, `event` and `length` still load: readers derive them (`with_derived_columns`).
"""
from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..console import UserError
from ..fileio import atomic_write_bytes, atomic_write_json

MANIFEST_COLUMNS = ["dataset", "subject", "session", "run", "recording", "window", "event", "start_s",
                    "length", "label", "fold"]
# what the pipeline provides per window; `event` names the source event or trial (windows cut from one
# event share it), `length` the window's own samples (the rest of the stored window is zero padding)
PART_COLUMNS = ["subject", "session", "run", "event", "start_s", "length", "label", "fold"]
# columns older caches lack, and how a reader derives them
DERIVED_COLUMNS = ("run", "event", "length")
CACHE_FORMAT = 1
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _check_recording_id(recording: str) -> str:
    if not _SAFE_NAME.match(recording) or ".." in recording:
        raise ValueError(f"recording id {recording!r} is not a safe file name")
    return recording


class CacheMismatch(UserError):
    """The cache folder holds windows made with other parameters; the caller decides to overwrite."""

    def __init__(self, directory: Path):
        super().__init__(f"{directory}: holds a cache made with other preprocessing parameters; overwrite it "
                         "or choose another cache folder")
        self.directory = directory


class CacheWriter:
    """Writes one dataset's cache recording by recording; resumable and atomic."""

    def __init__(self, directory: str | Path, *, dataset: str, task: str, channels: list[str],
                 sfreq: float, window_samples: int, class_names: list[str], params: dict,
                 fingerprint: str, version: str, overwrite: bool = False):
        self.directory = Path(directory)
        self.meta = dict(format=CACHE_FORMAT, dataset=dataset, task=task, channels=list(channels),
                         sfreq=float(sfreq), window_samples=int(window_samples),
                         class_names=list(class_names), params=params, fingerprint=fingerprint,
                         version=version)
        self._claim(overwrite)

    @property
    def arrays(self) -> Path:
        return self.directory / "arrays"

    @property
    def parts(self) -> Path:
        return self.directory / "parts"

    def _claim(self, overwrite: bool) -> None:
        """Make sure existing files belong to the same parameters, or clear them when asked to."""
        stamp = self.directory / "fingerprint.txt"
        if stamp.exists() and stamp.read_text().strip() != self.meta["fingerprint"]:
            if not overwrite:
                raise CacheMismatch(self.directory)
            # markers before the data they vouch for: "finished", then "recording done", then arrays
            for name in ("info.json", "manifest.parquet"):
                (self.directory / name).unlink(missing_ok=True)
            for sub in ("parts", "arrays"):
                shutil.rmtree(self.directory / sub, ignore_errors=True)
        self.arrays.mkdir(parents=True, exist_ok=True)
        self.parts.mkdir(parents=True, exist_ok=True)
        if not stamp.exists() or stamp.read_text().strip() != self.meta["fingerprint"]:
            atomic_write_bytes(stamp, (self.meta["fingerprint"] + "\n").encode())

    def is_done(self, recording: str) -> bool:
        return (self.parts / f"{_check_recording_id(recording)}.parquet").exists()

    def write_recording(self, recording: str, windows: np.ndarray, rows: pd.DataFrame) -> None:
        """Store one recording: `windows` (n, C, L) float32 and `rows` with PART_COLUMNS, one per window
        (without run, event or length: run "1", each window its own event, full length)."""
        recording = _check_recording_id(recording)
        n, c, length = windows.shape
        if len(rows) != n:
            raise ValueError(f"{recording}: {n} windows but {len(rows)} manifest rows")
        if c != len(self.meta["channels"]) or length != self.meta["window_samples"]:
            raise ValueError(f"{recording}: windows of shape {(c, length)}, cache expects "
                             f"{(len(self.meta['channels']), self.meta['window_samples'])}")
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(windows, dtype=np.float32))
        atomic_write_bytes(self.arrays / f"{recording}.npy", buf.getvalue())
        part = rows[[c for c in PART_COLUMNS if c in rows.columns]].copy()  # run, event, length: optional
        part["dataset"] = self.meta["dataset"]
        part["recording"] = recording
        part["window"] = np.arange(n, dtype=np.int64)
        part = with_derived_columns(part, self.meta["window_samples"])
        buf = io.BytesIO()
        part.to_parquet(buf, index=False)
        atomic_write_bytes(self.parts / f"{recording}.parquet", buf.getvalue())

    def finalize(self, skipped: list[dict] | None = None) -> "WindowCache":
        """Concatenate the parts into manifest.parquet, then write info.json (the 'finished' mark)."""
        files = sorted(self.parts.glob("*.parquet"))
        frames = [with_derived_columns(pd.read_parquet(f), self.meta["window_samples"]) for f in files]
        manifest = (pd.concat(frames, ignore_index=True) if frames
                    else pd.DataFrame({c: [] for c in MANIFEST_COLUMNS}))
        manifest = _normalise_types(manifest[MANIFEST_COLUMNS])
        buf = io.BytesIO()
        manifest.to_parquet(buf, index=False)
        atomic_write_bytes(self.directory / "manifest.parquet", buf.getvalue())
        counts = {str(k): int(v) for k, v in manifest["label"].value_counts().sort_index().items()}
        info = dict(self.meta, n_windows=int(len(manifest)), n_recordings=len(files),
                    n_subjects=int(manifest["subject"].nunique()), windows_per_label=counts,
                    skipped=list(skipped or []))
        atomic_write_json(self.directory / "info.json", info)
        return WindowCache(self.directory)


def with_derived_columns(manifest: pd.DataFrame, window_samples: int) -> pd.DataFrame:
    """A manifest of an older cache with the columns it lacks: run "1", each window its own event,
    every window full length."""
    missing = [c for c in DERIVED_COLUMNS if c not in manifest.columns]
    if not missing:
        return _normalise_types(manifest[MANIFEST_COLUMNS])
    manifest = manifest.copy()
    if "run" in missing:
        manifest["run"] = "1"
    if "event" in missing:
        manifest["event"] = manifest["recording"].astype(str) + "/e" + manifest["window"].astype(str)
    if "length" in missing:
        manifest["length"] = np.int64(window_samples)
    return _normalise_types(manifest[MANIFEST_COLUMNS])


def _normalise_types(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in ("dataset", "subject", "session", "run", "recording", "event"):
        if col in df:
            df[col] = df[col].astype(str)
    for col, dtype in (("window", np.int64), ("label", np.int64), ("fold", np.int64),
                       ("length", np.int64), ("start_s", np.float64)):
        if col in df:
            df[col] = df[col].astype(dtype)
    return df


class WindowCache:
    """Read-only view of a finished cache; windows are memory-mapped, one file per recording."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        info_path = self.directory / "info.json"
        if not info_path.exists():
            raise UserError(f"{self.directory}: not a finished eegmamba cache (no info.json); "
                            "run `eegmamba preprocess` first")
        try:
            self.info = json.loads(info_path.read_text())
            self.manifest = pd.read_parquet(self.directory / "manifest.parquet")
        except (OSError, ValueError) as err:
            raise UserError(f"{self.directory}: unreadable cache ({err})") from err
        if not isinstance(self.info, dict) or self.info.get("format") != CACHE_FORMAT:
            found = self.info.get("format") if isinstance(self.info, dict) else None
            raise UserError(f"{self.directory}: cache format {found} is not "
                            f"supported (expected {CACHE_FORMAT}); preprocess again")
        self._validate()
        self.manifest = with_derived_columns(self.manifest, self.window_samples)
        self._maps: dict[str, np.ndarray] = {}
        self._rows_needed: dict[str, int] | None = None

    def _validate(self) -> None:
        """info.json and the manifest hold what readers index with: a damaged cache is one line."""
        info = self.info
        problems = [key for key, kind in (("dataset", str), ("fingerprint", str), ("channels", list),
                                          ("class_names", list), ("window_samples", int))
                    if not isinstance(info.get(key), kind)]
        missing = [c for c in MANIFEST_COLUMNS if c not in self.manifest.columns and c not in DERIVED_COLUMNS]
        if problems or missing:
            what = ", ".join([f"info.json: {k}" for k in problems] + [f"manifest: {c}" for c in missing])
            raise UserError(f"{self.directory}: damaged cache (missing or malformed {what}); preprocess "
                            "again, overwriting the cache")

    # --- metadata ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.info["dataset"]

    @property
    def channels(self) -> list[str]:
        return list(self.info["channels"])

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    @property
    def window_samples(self) -> int:
        return int(self.info["window_samples"])

    @property
    def fingerprint(self) -> str:
        return self.info["fingerprint"]

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def labels(self) -> np.ndarray:
        return self.manifest["label"].to_numpy(np.int64)

    @property
    def subjects(self) -> np.ndarray:
        return self.manifest["subject"].to_numpy(str)

    @property
    def folds(self) -> np.ndarray:
        return self.manifest["fold"].to_numpy(np.int64)

    @property
    def events(self) -> np.ndarray:
        """The source event (trial) of each window; windows of one event belong on one side of a split."""
        return self.manifest["event"].to_numpy(str)

    @property
    def lengths(self) -> np.ndarray:
        """Samples of each window that are signal; after them the stored window is zero padding."""
        return self.manifest["length"].to_numpy(np.int64)

    @property
    def padded(self) -> bool:
        """True when some windows are shorter than `window_samples` (`--window event` with unequal
        events): feed the model `windows_and_lengths`, so that it ignores the padding."""
        return bool((self.lengths < self.window_samples).any())

    # --- data -------------------------------------------------------------------------------
    def _array(self, recording: str) -> np.ndarray:
        if recording not in self._maps:
            try:
                path = self.arrays_dir / f"{_check_recording_id(recording)}.npy"
            except ValueError as err:
                raise UserError(f"{self.directory}: damaged manifest ({err})") from None
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as err:
                raise UserError(f"{path}: unreadable window array ({err})") from err
            if self._rows_needed is None:  # highest window index per recording, +1
                self._rows_needed = (self.manifest.groupby("recording")["window"].max() + 1).to_dict()
            expected = (len(self.channels), self.window_samples)
            needed = int(self._rows_needed.get(recording, 0))
            if array.dtype != np.float32 or array.ndim != 3 or array.shape[1:] != expected or array.shape[0] < needed:
                raise UserError(f"{path}: damaged window array ({array.dtype} {array.shape}; the manifest needs "
                                f"float32 ({needed}, {expected[0]}, {expected[1]})); preprocess again, "
                                "overwriting the cache")
            self._maps[recording] = array
        return self._maps[recording]

    @property
    def arrays_dir(self) -> Path:
        return self.directory / "arrays"

    def windows(self, indices) -> np.ndarray:
        """Windows for manifest rows `indices`: float32 (len(indices), C, L), in the order given."""
        indices = np.asarray(indices, dtype=np.int64)
        rows = self.manifest.iloc[indices]
        out = np.empty((len(indices), len(self.channels), self.window_samples), dtype=np.float32)
        for rec, pos in rows.groupby("recording", sort=False).indices.items():
            out[pos] = self._array(rec)[rows["window"].to_numpy()[pos]]
        return out


    def windows_and_lengths(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(windows (n, C, L) float32 zero-padded to L = window_samples, lengths (n,) int64) for manifest
        rows `indices`: what `EEGMamba.forward(x, dataset, lengths)` takes."""
        indices = np.asarray(indices, dtype=np.int64)
        return self.windows(indices), self.lengths[indices]


def find_caches(root: str | Path) -> dict[str, WindowCache]:
    """Every finished cache directly under `root`, by dataset name."""
    root = Path(root)
    found = {}
    for info in sorted(root.glob("*/info.json")):
        cache = WindowCache(info.parent)
        found[cache.name] = cache
    return found
