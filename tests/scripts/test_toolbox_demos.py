"""scripts/toolbox_demos.py at a small size: the three figures, and what each demo shows."""

from __future__ import annotations

import json

from tests.scripts.loader import load_script


def test_small_demos(tmp_path):
    demos = load_script("toolbox_demos")
    assert demos.main(["--out", str(tmp_path), "--seeds", "2", "--nodes", "24", "--points", "40",
                       "--noises", "0.2", "--images", "4"]) == 0
    for name in ("toolbox_gw_shapes.png", "toolbox_fgw_graphs.png", "toolbox_free_barycenter_digits.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    summary = json.loads((tmp_path / "toolbox_demos.json").read_text())
    assert summary["gw_shapes"]["accuracy"] >= 0.8 and summary["gw_shapes"]["status"] == "CONVERGED"
    rates = summary["fgw_graphs"]["rates"][0]
    # fused GW uses both the features and the structure: better than either alone
    assert rates["fused GW, alpha = 0.5"] > max(rates["linear OT, features"], rates["GW, structure"])
    assert summary["digit_barycenter"]["status"] == "CONVERGED"
