"""Regenerate the thesis-figure reproductions into docs/figures/.

Runs each experiment through the real entry point,
``python -m train experiment=<name> hydra.run.dir=<tmpdir>/<name>``, and copies its
PNG to ``docs/figures/``:

    ipot_convergence -> fig2_2_ipot_convergence.png   (thesis Fig. 2.2)
    ipot_scaling     -> fig2_3_ipot_scaling.png       (thesis Fig. 2.3)
    ipot_plans       -> fig2_4_ipot_plans.png         (thesis Fig. 2.4)
    color_transfer   -> fig2_7_color_transfer.png     (thesis Fig. 2.7)
    digit_barycenters -> fig2_8_digit_barycenters.png (thesis Fig. 2.8)
    point_cloud_matching -> slides_point_cloud_matching.png (lecture slides: EMD vs Chamfer)
    wgan_critic      -> slides_wgan_critic.png        (slides / Arjovsky et al. Fig. 2: GAN vs WGAN critic)
    spot_pairs_gaussians -> fig3_6_spot_pairs_gaussians.png (thesis Fig. 3.6, upper row)
    spot_pairs_sine  -> fig3_6_spot_pairs_sine.png    (thesis Fig. 3.6, lower row)
    spot_digit_pairs -> fig3_5_spot_digit_pairs.png   (in the spirit of thesis Fig. 3.5)

Figures 3.2 and 3.3 come from multirun sweeps: ``make sweeps`` (scripts/spot_sweep_figures.py);
figures 2.5 and 2.6 from ``make generator-sweeps`` (scripts/generator_figures.py).

Usage: ``python scripts/make_figures.py [--only NAME ...] [--keep]`` (``--keep``: leave
the run directories, with metrics.json and the resolved configs, and print where).
Timings in Fig. 2.3 are wall-clock: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {
    "ipot_convergence": "fig2_2_ipot_convergence.png",
    "ipot_scaling": "fig2_3_ipot_scaling.png",
    "ipot_plans": "fig2_4_ipot_plans.png",
    "color_transfer": "fig2_7_color_transfer.png",
    "digit_barycenters": "fig2_8_digit_barycenters.png",
    "point_cloud_matching": "slides_point_cloud_matching.png",
    "wgan_critic": "slides_wgan_critic.png",
    "spot_pairs_gaussians": "fig3_6_spot_pairs_gaussians.png",
    "spot_pairs_sine": "fig3_6_spot_pairs_sine.png",
    "spot_digit_pairs": "fig3_5_spot_digit_pairs.png",
}
# Training runs draw spot.png; analyses draw <experiment>.png.
SOURCE = {name: "spot.png" for name in FIGURES if name.startswith("spot_")}


def make(name: str, run_root: Path, out_dir: Path) -> Path:
    """Run experiment ``name`` into ``run_root/name`` and copy its PNG to ``out_dir``; returns the copy."""
    run_dir = run_root / name
    cmd = [sys.executable, "-m", "train", f"experiment={name}", f"hydra.run.dir={run_dir}", "resume=false"]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    target = out_dir / FIGURES[name]
    shutil.copyfile(run_dir / SOURCE.get(name, f"{name}.png"), target)
    print(f"-> {target.relative_to(ROOT)}  ({time.perf_counter() - start:.1f} s)\n", flush=True)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(FIGURES), help="experiment(s) to run")
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    args = parser.parse_args(argv)
    out_dir = ROOT / "docs" / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    run_root = Path(tempfile.mkdtemp(prefix="ot_jax_figures_"))
    try:
        for name in args.only or FIGURES:
            make(name, run_root, out_dir)
    finally:
        if args.keep:
            print(f"run directories kept in {run_root}")
        else:
            shutil.rmtree(run_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
