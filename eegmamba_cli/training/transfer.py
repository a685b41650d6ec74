"""Fine-tuning from a trained model (`train --init-from`): which weights are loaded, which start fresh,
which are frozen, and the lineage the new checkpoints record.

An EEGMamba has shared parts, used by every dataset, and per-dataset parts, keyed by the dataset's index:

    shared       tokenizer   st.small.*, st.wide.*  (the dual-path convolutional tokenizer)
                 class_token st.cls_token
                 blocks      layers.*  (BiMamba and MoE blocks)
                 final_norm  norm_f.*
    per dataset  spatial     st.spatial.<i>.*  (its channels -> D)
                 task_token  row i of task_tokens (the MoE gate's task vector)
                 head        heads.<i>.*  (D -> its classes)

Every shared part is loaded from the parent. A dataset the parent was trained on (same name, channels and
class names) keeps its per-dataset parts; any other dataset gets freshly initialised ones. The parent
decides the architecture: the new model is built with its model config, so the shared tensors fit by
construction; a width or block count asked for explicitly that differs is refused before anything runs.

Only safetensors are read here (never a pickle, whatever --allow-pickle-checkpoint says elsewhere).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from models import DatasetSpec, EEGMamba, EEGMambaConfig

from ..errors import ConfigError, literal
from . import checkpoint as ckpt
from .run_folder import resolve_model

SHARED_PARTS = ("tokenizer", "class_token", "blocks", "final_norm")
DATASET_PARTS = ("spatial", "task_token", "head")
# --freeze: which shared parts stop learning. "backbone" leaves only the per-dataset parts training.
FREEZE = {"none": (), "backbone": SHARED_PARTS, "tokenizer": ("tokenizer",)}

_PER_DATASET = re.compile(r"^(?:st\.spatial|heads)\.(\d+)\.")


class TransferError(ValueError):
    """A parent checkpoint that cannot initialise the model asked for (in the library's own terms)."""


def part_of(name: str) -> tuple[str, int | None]:
    """(part, dataset index or None) of a state-dict key; see the module docstring for the table."""
    match = _PER_DATASET.match(name)
    if match:
        return ("spatial" if name.startswith("st.") else "head"), int(match.group(1))
    if name == "task_tokens":
        return "task_token", None  # one tensor, one row per dataset
    if name.startswith(("st.small.", "st.wide.")):
        return "tokenizer", None
    if name == "st.cls_token":
        return "class_token", None
    if name.startswith("layers."):
        return "blocks", None
    if name.startswith("norm_f."):
        return "final_norm", None
    raise TransferError(f"parameter {name!r} belongs to no known part of EEGMamba")


@dataclass(frozen=True)
class Parent:
    """The trained model a fine-tune starts from."""

    source: Path  # what the user named: a run, fold, checkpoint or exported model folder
    checkpoint: Path  # the checkpoint (or exported model) folder it resolved to
    meta: dict
    state: dict[str, torch.Tensor]

    @property
    def sha256(self) -> str:
        return self.meta["files"][ckpt.MODEL_FILE]

    @property
    def config(self) -> EEGMambaConfig:
        return EEGMambaConfig.from_dict(self.meta["model_config"])

    def dataset(self, name: str) -> dict | None:
        return next((d for d in self.meta["datasets"] if d["name"] == name), None)


def read_parent(path: str | Path, fold: int | None = None) -> Parent:
    """The checkpoint `path` stands for (run_folder.resolve_model's rule), its metadata and weights."""
    source = Path(path)
    checkpoint = resolve_model(source, fold)
    directory, meta = ckpt.read_meta(checkpoint)
    state = ckpt.load_state_dict(directory, allow_pickle=False)
    check_fits(state, ckpt.build_model(meta, directory))
    return Parent(source, directory, meta, state)


def check_fits(state: dict[str, torch.Tensor], model: EEGMamba) -> None:
    """Refuse weights that do not fit the architecture their own metadata describes (a hand-edited or
    damaged checkpoint), naming the first tensor that differs and both shapes."""
    for name, tensor in model.state_dict().items():
        if name not in state:
            raise TransferError(f"the checkpoint has no {name!r}, which its model config needs")
        if state[name].shape != tensor.shape:
            raise TransferError(f"{name}: the checkpoint's weights are {tuple(state[name].shape)}, its model "
                                f"config makes {tuple(tensor.shape)}")


def architecture(parent: Parent, d_model: int | None, layers: int | None) -> EEGMambaConfig:
    """The parent's architecture; `d_model`/`layers` are what the caller asked for explicitly (None: not
    asked), refused when they differ from the parent's."""
    config = parent.config
    if (d_model is not None and d_model != config.d_model) or (layers is not None and layers != config.n_layers):
        asked = f"d_model {d_model or config.d_model} x {layers or config.n_layers} blocks"
        raise ConfigError(f"{{init_from}} {literal(parent.checkpoint)} has d_model {config.d_model} x "
                          f"{config.n_layers} blocks, but {literal(asked)} were asked for ({{d_model}}/{{layers}}); "
                          "a fine-tune keeps the checkpoint's architecture: leave {d_model} and {layers} unset")
    return config


def transfer_config(parent: Parent, asked: EEGMambaConfig) -> EEGMambaConfig:
    """The parent's architecture with the training-only settings of `asked` (the auxiliary loss weights)."""
    return replace(parent.config, balance_loss_weight=asked.balance_loss_weight, z_loss_weight=asked.z_loss_weight)


def kept_datasets(parent: Parent, specs: list[DatasetSpec], records: list[dict]) -> dict[str, int]:
    """Dataset name -> its index in the parent, for the datasets whose per-dataset parts are kept."""
    names = [d["name"] for d in parent.meta["datasets"]]
    kept = {}
    for spec, record in zip(specs, records):
        theirs = parent.dataset(spec.name)
        if theirs is None:
            continue
        same = int(theirs["n_channels"]) == spec.n_channels and int(theirs["n_classes"]) == spec.n_classes and all(
            list(theirs.get(k) or record.get(k) or []) == list(record.get(k) or []) for k in ("channels", "class_names"))
        if same:
            kept[spec.name] = names.index(spec.name)
    return kept


def lineage(parent: Parent, specs: list[DatasetSpec], records: list[dict], freeze: str, lr_factor: float) -> dict:
    """What run.json and every checkpoint record about where the weights came from."""
    kept = kept_datasets(parent, specs, records)
    config = parent.config
    parts = [p for p in DATASET_PARTS if p != "task_token" or (config.use_moe and config.moe.task_aware_gate)]
    per_dataset = [f"{part}.{s.name}" for s in specs for part in parts]
    loaded = list(SHARED_PARTS) + [p for p in per_dataset if p.split(".", 1)[1] in kept]
    return dict(parent=str(parent.source), parent_checkpoint=str(parent.checkpoint), parent_sha256=parent.sha256,
                parent_datasets=[d["name"] for d in parent.meta["datasets"]],
                loaded=loaded, new=[p for p in per_dataset if p not in loaded],
                frozen=list(FREEZE[freeze]), freeze=freeze, pretrained_lr_factor=lr_factor)


def initialise(model: EEGMamba, parent: Parent, kept: dict[str, int], freeze: str) -> set[str]:
    """Copy the parent's shared parts and the kept datasets' parts into `model` (in place), freeze the
    parts `freeze` names; returns the names of the parameters that were loaded whole."""
    own = model.state_dict()
    index = {spec.name: i for i, spec in enumerate(model.datasets)}
    back = {i: kept[name] for name, i in index.items() if name in kept}  # our index -> the parent's
    loaded: set[str] = set()
    with torch.no_grad():
        for name, tensor in own.items():
            part, i = part_of(name)
            if part in SHARED_PARTS:
                _copy(tensor, parent.state, name)
                loaded.add(name)
            elif part == "task_token":
                for ours, theirs in back.items():
                    _copy(tensor[ours], parent.state, name, row=theirs)
                if len(back) == len(index):
                    loaded.add(name)
            elif i in back:
                _copy(tensor, parent.state, re.sub(r"\.\d+\.", f".{back[i]}.", name, count=1))
                loaded.add(name)
    frozen = FREEZE[freeze]
    for name, p in model.named_parameters():
        if part_of(name)[0] in frozen:
            p.requires_grad_(False)
    return loaded


def _copy(target: torch.Tensor, state: dict[str, torch.Tensor], name: str, row: int | None = None) -> None:
    if name not in state:
        raise TransferError(f"the parent checkpoint has no {name!r}")
    source = state[name] if row is None else state[name][row]
    if source.shape != target.shape:
        raise TransferError(f"{name}: the parent's is {tuple(source.shape)}, this model's is {tuple(target.shape)}")
    target.copy_(source)


def param_groups(model: EEGMamba, weight_decay: float, loaded: set[str], lr_factor: float) -> list[dict]:
    """The model's AdamW groups, each split into loaded and new parameters; the loaded ones carry
    `lr_scale` = lr_factor, which the trainer's learning-rate setter multiplies in."""
    if lr_factor == 1.0:
        return model.param_groups(weight_decay)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for group in model.param_groups(weight_decay):
        for scale, wanted in ((lr_factor, True), (1.0, False)):
            params = [p for p in group["params"] if (names[id(p)] in loaded) == wanted]
            if params:
                groups.append(dict(group, params=params, lr_scale=scale))
    return groups
