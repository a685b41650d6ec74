"""EEGMamba: ST-Adaptive front end -> n x [BiMamba block -> task-aware MoE block] -> LN -> head.

One batch comes from one dataset: `forward(x, dataset, lengths=None)` with x (B, C_i, L). `dataset` is a
name or an index into the `datasets` given at construction; that index keys the spatial convolution, the
task token and the head (the eight paper corpora have a fixed order: docs/design.md#dataset-index).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .bimamba import BiMambaBlock
from .config import DatasetSpec, EEGMambaConfig
from .moe import MoEBlock
from .st_adaptive import STAdaptive, length_mask, min_length


class EEGMambaLayer(nn.Module):
    """One BiMamba block, then (unless the w/o-MoE ablation) one MoE block, alternating as drawn."""

    def __init__(self, config: EEGMambaConfig):
        super().__init__()
        self.bimamba = BiMambaBlock(config.d_model, config.mamba)
        self.moe = MoEBlock(config.d_model, config.moe) if config.use_moe else None

    def forward(self, x, lengths=None, mask=None, task=None):  # (B, L, D) -> (B, L, D), aux or None
        x = self.bimamba(x, lengths)
        if self.moe is None:
            return x, None
        return self.moe(x, task, mask)

    def at(self, x, at, lengths=None, task=None):  # (B, L, D), at (B,) -> (B, D), no auxiliary losses
        """The layer's output at one position per row (the MoE is per token: it runs on those rows only)."""
        x = self.bimamba.at(x, at, lengths)  # (B, D)
        if self.moe is None:
            return x
        return self.moe(x[:, None], task)[0][:, 0]


class DatasetRouter(nn.Module):
    """Shared by EEGMamba and the Transformer baseline: dataset lookup and input checks."""

    datasets: tuple[DatasetSpec, ...]

    def dataset_index(self, dataset: str | int) -> int:
        if isinstance(dataset, str):
            for i, spec in enumerate(self.datasets):
                if spec.name == dataset:
                    return i
            raise ValueError(f"unknown dataset {dataset!r}; this model knows "
                             f"{', '.join(d.name for d in self.datasets)}")
        if not 0 <= int(dataset) < len(self.datasets):
            raise ValueError(f"dataset index {dataset} out of range 0..{len(self.datasets) - 1}")
        return int(dataset)

    def classify(self, x, dataset: str | int, lengths=None):
        """Logits only (B, K_i), the inference loop's entry; a model may skip work no logit depends on."""
        return self(x, dataset, lengths)[0]

    def check_input(self, x, index: int, lengths) -> None:
        spec = self.datasets[index]
        if x.dim() != 3 or x.shape[1] != spec.n_channels:
            raise ValueError(f"dataset {spec.name!r} expects input (B, {spec.n_channels}, L), "
                             f"got {tuple(x.shape)}")
        if lengths is None or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
        shortest = min_length(self.config.tokenizer_padding)
        if bool((lengths > x.shape[-1]).any()) or bool((lengths < shortest).any()):
            raise ValueError(f"lengths must lie in [{shortest}, {x.shape[-1]}], got {lengths.tolist()}")

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups. No decay for: parameters tagged `_no_weight_decay` (A_log, D and their `_b` twins,
        the class token, the task tokens) and every parameter with fewer than 2 dimensions (biases,
        LayerNorm/BatchNorm/GroupNorm weights), as in nanoGPT and mamba_ssm. Everything else decays."""
        decay, no_decay = [], []
        for p in self.parameters():
            if not p.requires_grad:
                continue
            (no_decay if getattr(p, "_no_weight_decay", False) or p.dim() < 2 else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class EEGMamba(DatasetRouter):
    def __init__(self, config: EEGMambaConfig, datasets: Sequence[DatasetSpec]):
        super().__init__()
        if not datasets:
            raise ValueError("EEGMamba needs at least one dataset")
        self.config = config
        self.datasets = tuple(datasets)
        d = config.d_model
        self.st = STAdaptive(config, [spec.n_channels for spec in self.datasets])
        self.task_tokens = None  # one learned vector per dataset, shared by all MoE layers
        if config.use_moe and config.moe.task_aware_gate:
            self.task_tokens = nn.Parameter(torch.randn(len(self.datasets), d) * 0.02)
            self.task_tokens._no_weight_decay = True
        self.layers = nn.ModuleList(EEGMambaLayer(config) for _ in range(config.n_layers))
        self.norm_f = nn.LayerNorm(d) if config.final_norm else nn.Identity()
        self.heads = nn.ModuleList(nn.Linear(d, spec.n_classes) for spec in self.datasets)

    def forward(self, x, dataset: str | int, lengths=None):
        """x (B, C_i, L), lengths (B,) valid samples of a right-padded batch -> logits (B, K_i), aux."""
        if not self.config.use_moe and len(self.layers):  # no auxiliary losses: only the class token is read
            zero = x.new_zeros(())
            return self._class_logits(x, dataset, lengths), {"balance": zero, "z": zero}
        return self._forward_all_tokens(x, dataset, lengths)

    def _forward_all_tokens(self, x, dataset, lengths=None):
        """Every layer on every token (the MoE's auxiliary losses need them; the oracle of the shortcuts)."""
        i, tokens, n, cls_at, mask, task = self._tokens(x, dataset, lengths)
        tokens, auxes = _every_token(self.layers, tokens, n, mask, task)  # (B, N+1, D)
        balance, z = [aux["balance"] for aux in auxes], [aux["z"] for aux in auxes]
        cls = tokens[torch.arange(tokens.shape[0], device=tokens.device), cls_at]  # (B, D)
        return self._head(i, cls), {"balance": _mean(balance, tokens), "z": _mean(z, tokens)}

    def classify(self, x, dataset: str | int, lengths=None):
        """Logits only, (B, K_i): `forward(...)[0]` up to rounding, computed in a cheaper order.

        Only the class token of the last layer reaches the head, so that layer runs at the class token
        alone (`EEGMambaLayer.at`): its forward scan on the prefix up to it, its gate, output projection and
        MoE on one row per window. No auxiliary losses (they need every token's routing): for inference.
        Without MoE there are none, and `forward` itself (training included) takes this order."""
        if len(self.layers) == 0:
            return self._forward_all_tokens(x, dataset, lengths)[0]
        return self._class_logits(x, dataset, lengths)

    def _class_logits(self, x, dataset, lengths):
        i, tokens, n, cls_at, mask, task = self._tokens(x, dataset, lengths)
        *body, last = self.layers
        tokens, _ = _every_token(body, tokens, n, mask, task)  # (B, N+1, D)
        return self._head(i, last.at(tokens, cls_at, n, task))

    def _head(self, i: int, cls):
        """(B, D) class tokens -> (B, K_i) logits, in fp32 even under autocast: bf16 logits (8 significant
        bits) tie or swap windows whose scores differ by less than about 1/256 of their size, and ranking
        metrics (AUROC) read exactly those differences. One (D x K) product per window."""
        with torch.autocast(cls.device.type, enabled=False):
            cls = cls if cls.dtype == torch.float64 else cls.float()
            return self.heads[i](self.norm_f(cls))  # (B, K_i)

    def _tokens(self, x, dataset, lengths):
        """The front end and what every layer needs: dataset index, tokens (B, N+1, D), valid counts (B,) or
        None, class token positions (B,), token mask (B, N+1) or None, task token (D,) or None."""
        i = self.dataset_index(dataset)
        self.check_input(x, i, lengths)
        tokens, n = self.st(x, i, lengths)  # (B, N+1, D), (B,) valid tokens or None
        cls_at = self._class_token_positions(tokens, n)  # (B,)
        if self.config.cls_position == "last":
            tokens = move_class_token_last(tokens, cls_at)
        mask = None if n is None else length_mask(n, tokens.shape[1])  # (B, N+1)
        task = None if self.task_tokens is None else self.task_tokens[i]  # (D,)
        return i, tokens, n, cls_at, mask, task

    def _class_token_positions(self, tokens, n):
        """Index of the class token in each row: 0, or the row's last valid token when placed last."""
        b, length = tokens.shape[:2]
        if self.config.cls_position == "first":
            return torch.zeros(b, dtype=torch.long, device=tokens.device)
        if n is None:
            return torch.full((b,), length - 1, dtype=torch.long, device=tokens.device)
        return n.to(tokens.device) - 1

    def loss(self, logits, y, aux):
        """L = CE + lambda_b * mean balance + lambda_z * mean z; returns (total, detached parts).

        The weights' defaults and alternatives: docs/design.md#loss-and-auxiliary-loss-weights."""
        ce = F.cross_entropy(logits, y)
        total = ce + self.config.balance_loss_weight * aux["balance"] + self.config.z_loss_weight * aux["z"]
        parts = {"ce": ce, "balance": aux["balance"], "z": aux["z"], "total": total}
        return total, {k: v.detach() for k, v in parts.items()}


def move_class_token_last(tokens, last):
    """Per row, [cls, t1..tn, pads] -> [t1..tn, cls, pads]; `last` (B,) is the row's last valid index."""
    t = torch.arange(tokens.shape[1], device=tokens.device)[None, :]  # (1, T)
    last = last[:, None]  # (B, 1)
    src = torch.where(t < last, t + 1, torch.where(t == last, torch.zeros_like(t), t))  # (B, T)
    return tokens.gather(1, src[..., None].expand(-1, -1, tokens.shape[2]))  # (B, T, D)


def _every_token(layers, tokens, n, mask, task):
    """Each of `layers` on every token, tokens (B, N+1, D) -> (B, N+1, D), and the MoE layers' aux losses."""
    auxes = []
    for layer in layers:
        tokens, aux = layer(tokens, n, mask, task)  # (B, N+1, D)
        if mask is not None:  # pads carry no stale values from layer to layer
            tokens = tokens.masked_fill(~mask[..., None], 0.0)
        if aux is not None:
            auxes.append(aux)
    return tokens, auxes


def _mean(values, like):
    """Mean over MoE layers of a per-layer scalar; a zero (of `like`'s dtype/device) without MoE."""
    return torch.stack(values).mean() if values else like.new_zeros(())
