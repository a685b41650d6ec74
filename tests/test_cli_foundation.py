from typer.testing import CliRunner

from eegmamba_cli import __version__
from eegmamba_cli.app import app
from eegmamba_cli.data.registry import dataset_specs, segment_samples
from models import ablate, preset

PAPER_DATASETS = dataset_specs()  # the paper's eight datasets, in the model's index order

runner = CliRunner()


def test_version_flag_prints_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"eegmamba {__version__}"


def test_paper_datasets_fixed_index_order():
    assert [d.name for d in PAPER_DATASETS] == [
        "siena", "chbmit", "sleepedf", "shhs", "deap", "seed", "shu", "bciiv2a"]
    assert [d.n_channels for d in PAPER_DATASETS] == [29, 23, 1, 1, 4, 62, 32, 22]
    assert [d.n_classes for d in PAPER_DATASETS] == [2, 2, 5, 5, 2, 3, 2, 4]
    assert list(segment_samples().values()) == [800, 800, 6000, 6000, 12000, 4000, 800, 600]


def test_presets_and_ablations():
    assert preset("multitask").n_layers == 8 and preset("multitask").use_moe
    st = preset("single-task")
    assert st.n_layers == 2 and not st.use_moe
    assert not ablate(preset("multitask"), "unidirectional").mamba.bidirectional
    v = ablate(preset("multitask"), "vanilla-moe").moe
    assert not v.task_aware_gate and not v.universal_expert
