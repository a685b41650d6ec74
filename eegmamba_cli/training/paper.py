"""The paper's EEGMamba results (Tables 2–5): mean and std over 5 subject-grouped folds.

Only the two EEGMamba rows are kept: the multi-task model (one model for all eight datasets) and the
single-task model (trained per dataset). Metric keys match `metrics.PAPER_METRICS`. The rows are keyed by
registry name; which datasets a table holds, their order and their display names come from the corpus
declarations (`PAPER_TABLES`, `DISPLAY_NAMES`, derived on first use).
"""
from __future__ import annotations

# The paper's table for each task.
TABLE_TITLES = {"seizure": "Table 2: seizure detection", "sleep": "Table 3: sleep staging",
                "emotion": "Table 4: emotion recognition", "mi": "Table 5: motor imagery"}


def paper_tables() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Per task: (table title, the datasets in the model's index order)."""
    from ..data.registry import TASKS

    return {task: (TABLE_TITLES.get(task, task), names) for task, names in TASKS.items()}


def display_names() -> dict[str, str]:
    """Registry name -> the name the paper's tables use."""
    from ..data.registry import registered

    return {name: c.info.display_name or name for name, c in registered().items()}


def __getattr__(attr: str):
    # Derived lazily (PEP 562): importing the results does not import every corpus reader.
    if attr == "PAPER_TABLES":
        return paper_tables()
    if attr == "DISPLAY_NAMES":
        return display_names()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")



def _row(acc, auroc, f1):
    return {"accuracy": acc, "auroc": auroc, "f1_weighted": f1}


PAPER_RESULTS: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "EEGMamba": {
        "siena": _row((0.9897, 0.0038), (0.9082, 0.0179), (0.7070, 0.0260)),
        "chbmit": _row((0.9789, 0.0132), (0.9126, 0.0492), (0.7964, 0.0444)),
        "sleepedf": _row((0.8486, 0.0276), (0.9636, 0.0107), (0.7738, 0.0293)),
        "shhs": _row((0.8478, 0.0177), (0.9587, 0.0077), (0.7433, 0.0160)),
        "deap": _row((0.5994, 0.0134), (0.5957, 0.0209), (0.5628, 0.0262)),  # AUROC: PDF text layer
        "seed": _row((0.5646, 0.0366), (0.7538, 0.0413), (0.5583, 0.0326)),
        "shu": _row((0.6207, 0.0505), (0.6645, 0.0681), (0.6183, 0.0525)),
        "bciiv2a": _row((0.4231, 0.0522), (0.6873, 0.0542), (0.4156, 0.0545)),
    },
    "Single-task EEGMamba": {
        "siena": _row((0.9897, 0.0053), (0.9137, 0.0105), (0.7106, 0.0326)),
        "chbmit": _row((0.9817, 0.0036), (0.9084, 0.0437), (0.7712, 0.0600)),
        "sleepedf": _row((0.8387, 0.0399), (0.9608, 0.0116), (0.7681, 0.0359)),
        "shhs": _row((0.8441, 0.0163), (0.9578, 0.0074), (0.7387, 0.0155)),
        "deap": _row((0.5985, 0.0247), (0.5721, 0.0184), (0.5505, 0.0157)),
        "seed": _row((0.5779, 0.0584), (0.7636, 0.0514), (0.5718, 0.0580)),
        "shu": _row((0.6169, 0.0467), (0.6597, 0.0653), (0.6145, 0.0437)),
        "bciiv2a": _row((0.4596, 0.0547), (0.7180, 0.0541), (0.4556, 0.0543)),
    },
}
