"""The quick modes of the 1998 experiments (experiments/train_1998.py, ablation.py, distortion_probe.py,
sdlm_experiments.py): the code path and a sound record, not the numbers."""

import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("script", ["train_1998", "ablation", "distortion_probe", "sdlm_experiments"])
def test_script_quick_mode(tmp_path, script):
    out = tmp_path / "record.json"
    result = subprocess.run([sys.executable, "-m", f"experiments.{script}", "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["quick"] is True and record["results"]["complete"] is True
    assert record["command"].split()[1:3] == ["-m", f"experiments.{script}"]      # as typed, rerunnable
    refused = subprocess.run([sys.executable, "-m", f"experiments.{script}", "--quick"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert refused.returncode != 0 and "temporary folder" in refused.stderr
