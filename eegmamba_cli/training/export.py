"""`eegmamba export`: a trained run -> one self-describing model folder, laid out as a Hugging Face Hub
model repository:

    OUT/
      config.json         architecture, one record per dataset head (channels, window, sampling rate,
                          preprocessing: band and normalisation, class names, task), how it was trained
                          (protocol, fold, epoch, seed), its lineage and the sha256 of the weights
      model.safetensors   the weights, byte for byte those of the run's checkpoint
      README.md           a model card generated from the run, with YAML front matter

config.json carries the same fields as a checkpoint's checkpoint.json (model_config, datasets, files,
format), so `predict --model OUT`, `train --init-from OUT` and `from_pretrained(OUT)` read it through the
same checkpoint code. The folder is written under a temporary name beside OUT and renamed into place.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from .. import __version__
from ..console import UserError
from ..data.base import to_seconds
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from . import checkpoint as ckpt
from .environment import environment
from .run_folder import RunFolder, is_fold_folder, resolve_model

KIND = "eegmamba-model"
CARD_FILE = "README.md"
CARD_METRICS = ("accuracy", "balanced_accuracy", "f1_weighted", "auroc", "cohen_kappa")


def export_model(run: str | Path, out: str | Path, fold: int | None = None) -> Path:
    """Export the checkpoint that `run` (a run, fold or checkpoint folder) stands for into `out`.

    `out` must not exist, be empty, or hold an earlier export (which is replaced whole)."""
    run, out = Path(run), Path(out)
    checkpoint = resolve_model(run, fold)
    directory, meta = ckpt.read_meta(checkpoint)
    if ckpt.MODEL_FILE not in meta.get("files", {}):
        raise UserError(f"{directory}: has no {ckpt.MODEL_FILE} (only safetensors checkpoints are exported)")
    weights = ckpt.model_bytes(directory, meta)  # sha256-verified
    _check_destination(out)
    owner = _owning_run(run, directory)
    config = export_config(meta, _run_record(owner), directory)
    tmp = out.with_name(f".{out.name}.export-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        atomic_write_bytes(tmp / ckpt.MODEL_FILE, weights)
        atomic_write_json(tmp / ckpt.EXPORT_META_FILE, config)
        atomic_write_text(tmp / CARD_FILE, model_card(config, _results(owner)))
        ckpt.publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _check_destination(out: Path) -> None:
    if out.is_file():
        raise UserError(f"{out}: is a file; --out must be a folder")
    if out.is_dir() and any(out.iterdir()) and not is_export(out):
        raise UserError(f"{out}: exists and is not an earlier export; choose an empty or new folder")


def is_export(path: Path) -> bool:
    try:
        return json.loads((Path(path) / ckpt.EXPORT_META_FILE).read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def _owning_run(run: Path, checkpoint: Path) -> RunFolder | None:
    """The run folder the checkpoint belongs to: `run` itself, or the run above the checkpoint's fold
    folder; None for a lone checkpoint folder."""
    for folder in (RunFolder(run), RunFolder(checkpoint.parent.parent)):
        if folder.record_path.is_file() and not is_fold_folder(folder.path):
            return folder
    return None


def _run_record(owner: RunFolder | None) -> dict:
    """Its run.json ({} without one, or when it cannot be read)."""
    try:
        return owner.read() if owner is not None else {}
    except UserError:
        return {}


def export_config(meta: dict, run: dict, checkpoint: Path) -> dict:
    train = meta.get("train") or run.get("config") or {}
    protocol = run.get("protocol") or {k: train.get(k) for k in ("protocol", "n_folds", "test_subjects",
                                                                  "test_sessions")}
    return dict(
        kind=KIND, format=ckpt.FORMAT, library_name="eegmamba",
        model_config=meta["model_config"],
        datasets=[dict(d, window_s=to_seconds(d["window_samples"], d.get("sfreq")))
                  if "window_samples" in d else d for d in meta["datasets"]],
        training=dict(protocol={k: v for k, v in protocol.items() if k != "per_dataset"},
                      fold=meta.get("fold"), epoch=meta.get("epoch"), best_epoch=meta.get("best_epoch"),
                      best_val_loss=meta.get("best_val_loss"), seed=meta.get("seed"), preset=meta.get("preset"),
                      ablations=meta.get("ablations"), recipe=(run.get("recipe") or {}).get("chosen"),
                      settings=train),
        lineage=meta.get("lineage"),
        source=dict(checkpoint=str(checkpoint), sha256=meta["files"][ckpt.MODEL_FILE],
                    trained_with=dict(eegmamba=meta.get("version"), torch=meta.get("torch"))),
        exported_with=environment() | {"eegmamba": __version__},
        files={ckpt.MODEL_FILE: meta["files"][ckpt.MODEL_FILE]},
    )


def _results(owner: RunFolder | None) -> dict | None:
    """Its evaluate results (None when it was not evaluated)."""
    if owner is None or not owner.results_json.is_file():
        return None
    try:
        return json.loads(owner.results_json.read_text())
    except (OSError, ValueError):
        return None


# --- the model card ----------------------------------------------------------------------------------
def _window_words(record: dict) -> str:
    """`4 s at 200 Hz`, and for a model trained on crops the centre part it reads: `4 s at 200 Hz (centre 3.5 s)`."""
    sfreq = record.get("sfreq") or 200
    words = f"{record.get('window_s', 0):g} s at {sfreq:g} Hz"
    crop = record.get("crop_samples", 0)
    return words + (f" (centre {record.get('window_s', 0) - crop / sfreq:g} s)" if crop else "")


def model_card(config: dict, results: dict | None) -> str:
    datasets = config["datasets"]
    tags = ["eeg", "eegmamba", "mamba", "mixture-of-experts", "pytorch", "safetensors",
            *sorted({d.get("task") for d in datasets if d.get("task")})]
    mc, training = config["model_config"], config["training"]
    protocol = training["protocol"]
    lines = ["---", "library_name: eegmamba", "tags:", *[f"- {t}" for t in tags],
             "license:  # set the licence under which you share these weights (and check the data's terms)",
             "---", "", f"# EEGMamba: {', '.join(d['name'] for d in datasets)}", "",
             f"An EEGMamba (d_model {mc['d_model']}, {mc['n_layers']} BiMamba blocks"
             f"{' + MoE blocks' if mc.get('use_moe') else ''}) exported by `eegmamba export` from a training run. "
             "Every head below is one dataset; call the model with the dataset's head.", "",
             "## Heads and preprocessing", "",
             "| head | task | channels | window | classes | band | normalisation |", "|---|---|---|---|---|---|---|"]
    for d in datasets:
        params = d.get("params") or {}
        band = params.get("band", "default")
        band = "the corpus's default" if band == "default" else "none" if band == "none" else \
            f"{band[0]:g}-{band[1]:g} Hz"
        lines.append(f"| {d['name']} | {d.get('task', '')} | {len(d.get('channels', []))}: "
                     f"{', '.join(d.get('channels', []))} | {_window_words(d)} "
                     f"| {', '.join(d.get('class_names', []))} | {band} | {params.get('normalize', 'window')} |")
    lines += ["", "Recordings are filtered at their own rate, resampled to 200 Hz, cut into windows and "
              "normalised exactly as the training caches were (`eegmamba predict` and the Python API do this).",
              "", "## Training", "",
              f"- protocol: {protocol.get('protocol')}"
              + (f" ({protocol['n_folds']} folds)" if protocol.get("n_folds") else "")
              + f"; these weights are fold {training.get('fold')}'s, epoch {training.get('epoch')}"
              + (f" (best validation loss {training['best_val_loss']:.4f} at epoch {training['best_epoch']})"
                 if isinstance(training.get("best_val_loss"), (int, float)) else ""),
              f"- seed {training.get('seed')}, recipe {training.get('recipe') or 'n/a'}",
              f"- weights sha256 `{config['files'][ckpt.MODEL_FILE]}`"]
    lineage = config.get("lineage")
    if lineage:
        lines.append(f"- fine-tuned from a model with sha256 `{lineage['parent_sha256']}` (heads "
                     f"{', '.join(lineage['parent_datasets'])}); new parts: {', '.join(lineage['new']) or 'none'}; "
                     f"frozen: {', '.join(lineage['frozen']) or 'none'}")
    lines += ["", "## Evaluation", ""] + _metrics_table(results) + [
        "", "## Use", "", "```bash", "eegmamba predict RECORDING.edf --model THIS_FOLDER --dataset HEAD", "```", "",
        "```python", "import eegmamba_cli as eegmamba", "model = eegmamba.from_pretrained(\"THIS_FOLDER\")",
        "table = model.predict(\"RECORDING.edf\", dataset=\"HEAD\")", "```", "",
        "## Software", "", *[f"- {k}: {v}" for k, v in config["exported_with"].items()
                             if k in ("eegmamba", "python", "torch", "numpy", "platform")],
        f"- trained with eegmamba {config['source']['trained_with'].get('eegmamba')}, torch "
        f"{config['source']['trained_with'].get('torch')}", ""]
    return "\n".join(lines)


def _metrics_table(results: dict | None) -> list[str]:
    if not results or not results.get("summary"):
        return ["Not evaluated: run `eegmamba evaluate RUN` before exporting to include the test metrics."]
    lines = ["Test metrics over the run's folds (mean ± std, held-out subjects as the protocol says):", "",
             "| head | folds | " + " | ".join(CARD_METRICS) + " |", "|---|---|" + "---|" * len(CARD_METRICS)]
    for name, metrics in results["summary"].items():
        cells = []
        for m in CARD_METRICS:
            value = metrics.get(m) or {}
            mean, std = value.get("mean"), value.get("std")
            ok = isinstance(mean, (int, float)) and math.isfinite(mean)
            cells.append(f"{mean:.3f} ± {std or 0:.3f}" if ok else "n/a")
        n = next((v.get("n_folds") for v in metrics.values() if isinstance(v, dict)), "")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return lines
