"""The A/B benchmark's import of an earlier commit's models (no timing asserted: tests never time)."""
import shutil
import subprocess
import sys

import pytest
import torch

import models
from eegmamba_cli.bench.ab import SOURCE_ROOT, Case, compare, import_models_at


def _is_git_checkout() -> bool:
    if shutil.which("git") is None:
        return False
    done = subprocess.run(["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"], capture_output=True)
    return done.returncode == 0


@pytest.mark.skipif(not _is_git_checkout(), reason="needs a git checkout")
def test_base_commit_imports_as_its_own_package_with_the_same_weights(tmp_path):
    try:
        base = import_models_at("HEAD", tmp_path)
        assert base.EEGMamba is not models.EEGMamba and base.__file__.startswith(str(tmp_path))
        result = compare(Case.parse("infer:2:300:2:single-task"), {"base": base, "new": models}, repeats=1)
        assert result["base"] > 0 and result["new"] > 0 and len(result["per_repeat"]) == 1
        torch.manual_seed(0)
        a = base.EEGMamba(base.preset("single-task"), [base.DatasetSpec("ab", 2, 5)]).eval()
        b = models.EEGMamba(models.preset("single-task"), [models.DatasetSpec("ab", 2, 5)]).eval()
        b.load_state_dict(a.state_dict())
        x = torch.randn(2, 2, 300)
        with torch.no_grad():
            torch.testing.assert_close(a(x, 0)[0], b(x, 0)[0])  # HEAD's models are this checkout's models
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "basemodels" or m.startswith("basemodels.")]:
            del sys.modules[name]


def test_case_parsing_refuses_an_unknown_mode():
    assert Case.parse("train:6:700:32:single-task") == Case("train", 6, 700, 32, "single-task")
    with pytest.raises(ValueError, match="train or infer"):
        Case.parse("eval:6:700:32:single-task")
