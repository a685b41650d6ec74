"""Checkpoints without pickle: weights in safetensors, everything else in JSON.

One checkpoint is a folder:

    model.safetensors        the model's state dict (fp32, CPU)
    checkpoint.json          model config, dataset specs (class names, channels, cache fingerprints),
                             package version, epoch, seed, fold, best validation loss, the training
                             config and the sha256 of every other file in the folder
    optimizer.safetensors    AdamW state tensors (exp_avg, exp_avg_sq, step), only in `last/`
    optimizer.json           AdamW param groups and any non-tensor state, only in `last/`

A folder is written complete under a temporary name and then renamed into place (`publish`), so
`fold-K/last/` and `fold-K/best/` always hold one whole epoch.

Pickles: a `.pt` (or .pth, .ckpt, .bin, .pkl) file is refused unless the caller passes
`allow_pickle=True` (the CLI's `--allow-pickle-checkpoint`): then a state dict in such a file, beside a
checkpoint.json that gives the model config, is read with `torch.load(weights_only=True)` only, which
unpickles tensors and plain containers and refuses every other global. Nothing here calls a full
unpickler.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from models import DatasetSpec, EEGMamba, EEGMambaConfig

from ..console import UserError
from ..fileio import atomic_write_bytes, atomic_write_json, fsync_directory

FORMAT = 1
MODEL_FILE, META_FILE = "model.safetensors", "checkpoint.json"
# An exported model folder (training/export.py) describes its weights in config.json instead, with the
# same fields, so that everything that reads a checkpoint reads an export as well.
EXPORT_META_FILE = "config.json"
OPT_FILE, OPT_META_FILE = "optimizer.safetensors", "optimizer.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_checkpoint(directory: Path, model: torch.nn.Module, meta: dict,
                     optimizer: torch.optim.Optimizer | None = None) -> None:
    """Write a checkpoint folder at `directory` (which should be a fresh temporary folder)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {MODEL_FILE: st_save({k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()},
                                 metadata={"format": "eegmamba"})}
    if optimizer is not None:
        tensors, opt_meta = optimizer_to_files(optimizer)
        files[OPT_FILE] = st_save(tensors)
        files[OPT_META_FILE] = (json.dumps(opt_meta, indent=1) + "\n").encode()
    for name, data in files.items():
        atomic_write_bytes(directory / name, data)
    # checkpoint.json last: it lists the others with their hashes, so a torn folder never validates.
    atomic_write_json(directory / META_FILE, dict(meta, format=FORMAT,
                                                  files={n: _sha256(d) for n, d in files.items()}))


def publish(tmp: Path, final: Path) -> None:
    """Rename the finished folder `tmp` to `final`, replacing the previous one.

    Directories cannot be swapped in one rename, so the old one is first moved aside to `.NAME.old`;
    `recover` puts it back if the process dies between the two renames.
    """
    old = aside(final)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError as err:
        if old.exists() and not final.exists():
            os.replace(old, final)  # put the previous checkpoint back at once
        raise UserError(f"{final}: cannot publish the new checkpoint ({err.strerror or err}); "
                        "the previous one is unchanged") from None
    fsync_directory(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def aside(final: Path) -> Path:
    """Where `publish` keeps the previous `final` while it renames the new one into place."""
    return final.with_name(f".{final.name}.old")


def recover(final: Path) -> None:
    """Undo a half-finished `publish` of `final`: put the previous folder back if the new one is missing."""
    old = aside(final)
    if old.exists():
        if final.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, final)


# --- optimizer state as safetensors + JSON ------------------------------------------------------
def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, other = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                other.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": other}


def optimizer_from_files(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {int(pid): dict(values) for pid, values in meta["state"].items()}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# --- reading -------------------------------------------------------------------------------------
PICKLE_FLAG = "--allow-pickle-checkpoint"


def _refuse_pickle(path: Path) -> UserError:
    return UserError(f"{path}: pickle-based checkpoints are never loaded without {PICKLE_FLAG} (unpickling "
                     f"can run code); expected a folder with {MODEL_FILE} and {META_FILE}, or pass {PICKLE_FLAG} "
                     "to read a state dict with torch.load(weights_only=True)")


def _checkpoint_dir(path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _refuse_pickle(path)
    if path.is_file() and path.name in (MODEL_FILE, META_FILE, EXPORT_META_FILE):
        path = path.parent
    if not path.is_dir():
        raise UserError(f"{path}: no such checkpoint folder")
    if meta_file(path) is None:
        raise UserError(f"{path}: not an eegmamba checkpoint (no {META_FILE})")
    return path


def meta_file(directory: Path) -> Path | None:
    """The metadata file of a checkpoint folder (checkpoint.json) or an exported model (config.json)."""
    for name in (META_FILE, EXPORT_META_FILE):
        if (directory / name).is_file():
            return directory / name
    return None


def _pickled_weights(directory: Path) -> Path | None:
    """A pickle weights file in a checkpoint folder that has no model.safetensors (model.pt, ...)."""
    if (directory / MODEL_FILE).exists():
        return None
    found = sorted(p for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
    return found[0] if found else None


def load_pickled_state_dict(path: Path, meta: dict | None = None) -> dict[str, torch.Tensor]:
    """A state dict from a pickle file, via torch.load(weights_only=True) only (tensors and plain
    containers; any other global is refused before it is called). Accepts {name: tensor} or that dict
    under 'state_dict', 'model' or 'model_state_dict'."""
    path = Path(path)
    expected = (meta or {}).get("files", {}).get(path.name)
    if expected is not None:
        _read_verified(path.parent, path.name, meta)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for a refused global; EOFError, RuntimeError for damage
        first = " ".join(str(err).strip().splitlines()[0].split()) if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: refused or unreadable by torch.load(weights_only=True) "
                        f"({type(err).__name__}: {first[:300]})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not (isinstance(obj, dict) and obj and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())):
        raise UserError(f"{path}: not a state dict (expected a mapping of parameter names to tensors)")
    return dict(obj)


def _read_verified(directory: Path, name: str, meta: dict) -> bytes:
    path = directory / name
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: missing or unreadable ({err.strerror or err})") from None
    expected = meta.get("files", {}).get(name)
    if expected is None or _sha256(data) != expected:
        raise UserError(f"{path}: corrupt (sha256 does not match {META_FILE}); the checkpoint is unusable")
    return data


def model_bytes(directory: Path, meta: dict) -> bytes:
    """The bytes of a checkpoint's model.safetensors, verified against its sha256 (for copying as is)."""
    return _read_verified(directory, MODEL_FILE, meta)


def _tensors(directory: Path, name: str, meta: dict) -> dict[str, torch.Tensor]:
    try:
        return st_load(_read_verified(directory, name, meta))
    except SafetensorError as err:
        raise UserError(f"{directory / name}: not a valid safetensors file ({err})") from None


def read_meta(path: str | Path) -> tuple[Path, dict]:
    directory = _checkpoint_dir(Path(path))
    source = meta_file(directory)
    try:
        meta = json.loads(source.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{source}: unreadable ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("model_config"), dict):
        raise UserError(f"{source}: not an eegmamba checkpoint of format {FORMAT}")
    datasets = meta.get("datasets")
    if not isinstance(meta.get("epoch", 0), int) or not isinstance(datasets, list) or not datasets or not all(
            isinstance(d, dict) and {"name", "n_channels", "n_classes"} <= set(d) for d in datasets):
        raise UserError(f"{source}: damaged checkpoint metadata (datasets missing or epoch not a number)")
    return directory, meta


def build_model(meta: dict, source: str | Path = META_FILE) -> EEGMamba:
    try:
        config = EEGMambaConfig.from_dict(meta["model_config"])
        specs = [DatasetSpec(d["name"], int(d["n_channels"]), int(d["n_classes"]), d.get("task", ""))
                 for d in meta["datasets"]]
        return EEGMamba(config, specs)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise UserError(f"{source}: its model config does not describe an EEGMamba model "
                        f"({type(err).__name__}: {' '.join(str(err).split())})") from None


def load_state_dict(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The verified weights of a checkpoint folder, as CPU tensors.

    `path` is a checkpoint folder (or a file in it). With `allow_pickle`, it may also be a pickle weights
    file beside a checkpoint.json, or a folder holding one instead of model.safetensors.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise _refuse_pickle(path)
        _, meta = read_meta(path.parent)
        return load_pickled_state_dict(path, meta)
    directory, meta = read_meta(path)
    pickled = _pickled_weights(directory)
    if pickled is not None:
        if not allow_pickle:
            raise _refuse_pickle(pickled)
        return load_pickled_state_dict(pickled, meta)
    return _tensors(directory, MODEL_FILE, meta)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    allow_pickle: bool = False) -> tuple[EEGMamba, dict]:
    """The model of a checkpoint folder (on CPU unless `device` says otherwise) and its metadata.

    `allow_pickle`: see load_state_dict (the CLI's --allow-pickle-checkpoint)."""
    path = Path(path)
    pickle_file = path.suffix.lower() in PICKLE_SUFFIXES and allow_pickle
    directory, meta = read_meta(path.parent if pickle_file else path)
    state = load_state_dict(path, allow_pickle=allow_pickle)
    model = build_model(meta, directory / META_FILE)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise UserError(f"{path if pickle_file else directory / MODEL_FILE}: weights do not fit the model in "
                        f"{META_FILE} ({first})") from None
    return model.to(device), meta


def load_optimizer_state(path: str | Path) -> dict:
    """The optimizer state dict saved beside a `last/` checkpoint (for resuming)."""
    directory, meta = read_meta(path)
    tensors = _tensors(directory, OPT_FILE, meta)
    try:
        opt_meta = json.loads(_read_verified(directory, OPT_META_FILE, meta))
    except ValueError as err:
        raise UserError(f"{directory / OPT_META_FILE}: unreadable ({err})") from None
    return optimizer_from_files(tensors, opt_meta)
