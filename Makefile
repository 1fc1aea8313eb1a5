# Two commands on a fresh machine: `make run` and `make test`.
# Each creates .venv when missing and installs the project (editable) into it;
# the stamp files make the second call quiet and fast.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test test-slow docs bench figures reproduce reproduce-full sweeps density-sweeps generator-sweeps knn-table robot-tables clean
.DEFAULT_GOAL := run

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e ".[dev]"
	@touch $(VENV)/.installed-run $@

run: $(VENV)/.installed-run
	$(PY) -m train

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q -n auto --dist loadscope

test-slow: $(VENV)/.installed-dev
	$(PY) -m pytest -q -n auto -m slow

$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PIP) install -e ".[docs]"
	@touch $(VENV)/.installed-run $@

# The documentation site (docs/_build/site): every public name needs a docstring and
# mkdocs builds with --strict (a warning, e.g. a broken link, is an error).
docs: $(VENV)/.installed-docs
	$(PY) scripts/build_docs.py

bench: $(VENV)/.installed-dev
	$(PY) scripts/bench_exact.py
	$(PY) scripts/bench_discrete.py
	$(PY) scripts/bench_sliced.py
	$(PY) scripts/bench_assignment.py
	$(PY) scripts/bench_barycenter.py
	$(PY) scripts/bench_train.py
	$(PY) scripts/bench_flows.py
	$(PY) scripts/bench_grad.py
	$(PY) scripts/bench_eager.py
	$(PY) scripts/bench_sharding.py
	$(PY) scripts/bench_soft_sort.py
	$(PY) scripts/bench_toolbox.py
	$(PY) scripts/bench_acceleration.py
	$(PY) scripts/ipot_status_table.py

# The analyses and single SPOT runs behind the thesis figures, rerun (scripts/reproduce.py --force).
FIGURE_RUNS := ipot_convergence ipot_scaling ipot_plans color_transfer digit_barycenters point_cloud_matching \
	wgan_critic spot_pairs_gaussians spot_pairs_sine spot_digit_pairs
figures: $(VENV)/.installed-dev
	$(PY) scripts/reproduce.py --only $(FIGURE_RUNS) --force $(FIGURE_RUNS)
	$(PY) scripts/toolbox_demos.py
	$(PY) scripts/soft_topk_figure.py

# Every experiment of the README's table, one after the other, finished ones skipped, interrupted
# training runs resumed; the table goes to docs/reproduction.md (block `reproduce`), the figures to
# docs/figures/. reproduce-full: every run at its documented scale, then the sweeps and tables.
reproduce: $(VENV)/.installed-dev
	$(PY) scripts/reproduce.py

reproduce-full: $(VENV)/.installed-dev
	$(PY) scripts/reproduce.py --full

# Sweeps live in conf/sweep/<name>.yaml (swept values, sweep directory, launcher):
# python -m train -m +sweep=<name>. Each target runs its sweeps, then draws the figures.
SWEEP := $(PY) -m train -m

# Thesis figures 3.2 and 3.3: SPOT multirun sweeps (2 parallel local jobs).
sweeps: $(VENV)/.installed-run
	$(SWEEP) +sweep=fig3_2
	$(PY) scripts/spot_sweep_figures.py fig3_2 multirun/fig3_2 --out docs/figures/fig3_2_spot_w_vs_step.png
	$(SWEEP) +sweep=fig3_3
	$(PY) scripts/spot_sweep_figures.py fig3_3 multirun/fig3_3 --out docs/figures/fig3_3_spot_hidden_units.png
	$(SWEEP) +sweep=fig3_3_lr1e-4
	$(PY) scripts/spot_sweep_figures.py fig3_3 multirun/fig3_3_lr1e-4 --out docs/figures/fig3_3_spot_hidden_units_lr1e-4.png

# Thesis figure 3.4: density recovery for lambda in {0.1, 0.5, 1}, Gaussian and mixture cases.
density-sweeps: $(VENV)/.installed-run
	$(SWEEP) +sweep=fig3_4_gaussian
	$(PY) scripts/density_figures.py multirun/fig3_4_gaussian --out docs/figures/fig3_4_density_gaussian.png --json docs/figures/fig3_4_density_gaussian.json
	$(SWEEP) +sweep=fig3_4_mixture
	$(PY) scripts/density_figures.py multirun/fig3_4_mixture --out docs/figures/fig3_4_density_mixture.png --json docs/figures/fig3_4_density_mixture.json

# Thesis figures 2.5 and 2.6 (minibatch-OT generators against WGAN) and the sliced generator.
# One job at a time (basic launcher): the tables compare methods under equal training time.
generator-sweeps: $(VENV)/.installed-run
	$(SWEEP) +sweep=fig2_5
	$(SWEEP) +sweep=fig2_5_sinkhorn
	$(SWEEP) +sweep=fig2_5_sinkhorn_long
	$(PY) -m train loop.progress=false experiment=wgan_mixture hydra.run.dir=multirun/fig2_5/wgan
	$(PY) -m train loop.progress=false experiment=wgan_gp_mixture hydra.run.dir=multirun/fig2_5/wgan_gp
	$(PY) -m train loop.progress=false experiment=wgan_gp_mixture trainer.latent=uniform hydra.run.dir=multirun/fig2_5/wgan_gp_uniform
	$(PY) -m train loop.progress=false experiment=wgan_mixture trainer.latent=normal hydra.run.dir=multirun/fig2_5/wgan_normal
	$(PY) -m train loop.progress=false experiment=generator_mixture trainer.latent=normal hydra.run.dir=multirun/fig2_5/ipot_normal
	$(PY) scripts/generator_figures.py multirun/fig2_5 --out docs/figures/fig2_5_generators.png --json docs/figures/fig2_5_generators.json
	$(SWEEP) +sweep=fig2_6_ipot
	$(SWEEP) +sweep=fig2_6_sliced
	$(SWEEP) +sweep=fig2_6_sinkhorn
	$(PY) scripts/generator_figures.py multirun/fig2_6 --out docs/figures/fig2_6_digit_generators.png --json docs/figures/fig2_6_digit_generators.json --title "Digits generators on a 2-D latent grid"
	$(SWEEP) +sweep=grid25
	$(PY) scripts/generator_figures.py multirun/grid25 --out docs/figures/grid25_generators.png --json docs/figures/grid25_generators.json --title "25 Gaussians: IPOT and sliced generators"
	$(PY) -m train experiment=wgan_critic hydra.run.dir=multirun/wgan_critic

# kNN through soft top-k (Xie et al. 2020) on the digits: 4 methods x 3 seeds and raw pixels (~7 min on 2 cores);
# the table goes to docs/reproduction.md, the figure to docs/figures/soft_knn_accuracy_k.png.
knn-table: $(VENV)/.installed-run
	$(PY) scripts/soft_knn_table.py

# ROBOT: the authors' protocol (10 seeds), the shuffled-share, grid, nonlinear and cytometry
# studies, and the tracking toy (the scale study, --study scale, is left to run on its own).
robot-tables: $(VENV)/.installed-run
	$(PY) scripts/robot_table.py --study protocol --steps 300
	$(PY) scripts/robot_table.py --study shuffled --steps 300
	$(PY) scripts/robot_table.py --study grid --steps 300
	$(PY) scripts/robot_table.py --study protocol --experiment robot_mlp --seeds 0 1 2
	$(PY) scripts/robot_table.py --study wells
	$(PY) scripts/robot_tracking.py

clean:
	rm -rf $(VENV) outputs multirun
