"""The quick modes of the 1998 experiments (experiments/train_1998.py, ablation.py, distortion_probe.py,
sdlm_experiments.py, per_pattern_1998.py): the code path and a sound record, not the numbers."""

import subprocess
import sys

import pytest

from conftest import REPO, run_quick


@pytest.mark.parametrize("script", ["train_1998", "ablation", "distortion_probe", "sdlm_experiments",
                                    "per_pattern_1998"])
def test_script_quick_mode(tmp_path, script):
    record = run_quick(script, tmp_path / "record.json")
    assert record["quick"] is True and record["results"]["complete"] is True
    assert record["command"].split()[1:3] == ["-m", f"experiments.{script}"]      # as typed, rerunnable
    refused = subprocess.run([sys.executable, "-m", f"experiments.{script}", "--quick"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert refused.returncode != 0 and "temporary folder" in refused.stderr
