"""scripts/soft_knn_table.py end to end at a tiny size (two methods, one seed, two steps)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soft_knn_table.py"


@pytest.mark.slow  # two training runs and a figure (~15 s); the trainer's own tests are in tests/train
def test_tiny_table(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("soft_knn_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "table"
    assert module.main(["--seeds", "0", "--steps", "2", "--methods", "soft_implicit", "cross_entropy", "--no-write",
                        "--out", str(out), "--", "trainer.k=3", "trainer.eval_ks=[1,3]", "trainer.batch_size=16",
                        "trainer.support_size=32"]) == 0
    table = (out / "table.md").read_text()
    assert "| soft kNN, SOFT top-k (implicit gradient) | implicit | 3 | 0.01 |" in table
    assert "cross-entropy embedding" in table and "raw pixels" in table
    runs = json.loads((out / "runs.json").read_text())
    assert set(runs["runs"]) == {"soft_implicit", "cross_entropy"} and runs["k"] == 3
    assert (out / "soft_knn_accuracy_k.png").stat().st_size > 10_000
    assert (out / "soft_implicit" / "seed=0" / "metrics.json").exists()
    assert "| method |" in capsys.readouterr().out
