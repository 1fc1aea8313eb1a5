# Two commands on a fresh machine: `make run` and `make test`.
# Each creates .venv when missing and installs the project (editable) into it;
# the stamp files make the second call quiet and fast.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test test-slow bench figures sweeps density-sweeps generator-sweeps clean
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
	$(PY) -m pytest -q -n auto

test-slow: $(VENV)/.installed-dev
	$(PY) -m pytest -q -n auto -m slow

bench: $(VENV)/.installed-dev
	$(PY) scripts/bench_discrete.py
	$(PY) scripts/bench_sliced.py
	$(PY) scripts/bench_assignment.py
	$(PY) scripts/bench_barycenter.py
	$(PY) scripts/bench_train.py
	$(PY) scripts/bench_flows.py

figures: $(VENV)/.installed-run
	$(PY) scripts/make_figures.py

# Thesis figures 3.2 and 3.3: SPOT multirun sweeps (2 parallel local jobs), then the figures.
SWEEP := $(PY) -m train -m hydra/launcher=local_parallel loop.progress=false
sweeps: $(VENV)/.installed-run
	$(SWEEP) experiment=spot_w_distance optimizer.learning_rate=1e-3,1e-4,1e-5 seed=0,1,2,3,4 hydra.sweep.dir=multirun/fig3_2
	$(PY) scripts/spot_sweep_figures.py fig3_2 multirun/fig3_2 --out docs/figures/fig3_2_spot_w_vs_step.png
	$(SWEEP) experiment=spot_hidden_units 'model.hidden=[2,2],[4,4],[8,8],[16,16],[32,32],[64,64],[128,128],[256,256]' seed=0,1,2 hydra.sweep.dir=multirun/fig3_3
	$(PY) scripts/spot_sweep_figures.py fig3_3 multirun/fig3_3 --out docs/figures/fig3_3_spot_hidden_units.png

# Thesis figure 3.4: density recovery for lambda in {0.1, 0.5, 1}, Gaussian and mixture cases.
density-sweeps: $(VENV)/.installed-run
	$(SWEEP) experiment=density_gaussian trainer.lam=0.1,0.5,1.0 hydra.sweep.dir=multirun/fig3_4_gaussian
	$(PY) scripts/density_figures.py multirun/fig3_4_gaussian --out docs/figures/fig3_4_density_gaussian.png --json docs/figures/fig3_4_density_gaussian.json
	$(SWEEP) experiment=density_mixture trainer.lam=0.1,0.5,1.0 hydra.sweep.dir=multirun/fig3_4_mixture
	$(PY) scripts/density_figures.py multirun/fig3_4_mixture --out docs/figures/fig3_4_density_mixture.png --json docs/figures/fig3_4_density_mixture.json

# Thesis figures 2.5 and 2.6 (minibatch-OT generators against WGAN) and the sliced generator.
# One job at a time (basic launcher): the tables compare methods under equal training time.
# Sinkhorn at eps = 0.1 runs 80000 steps: at 0.32 ms/step that matches IPOT's ~25 s for 20000.
GEN_SWEEP := $(PY) -m train -m loop.progress=false
generator-sweeps: $(VENV)/.installed-run
	$(GEN_SWEEP) experiment=generator_mixture solver=ipot,emd,sliced hydra.sweep.dir=multirun/fig2_5
	$(GEN_SWEEP) experiment=generator_mixture solver=sinkhorn solver.epsilon=0.01 hydra.sweep.dir=multirun/fig2_5
	$(GEN_SWEEP) experiment=generator_mixture solver=sinkhorn solver.epsilon=0.1 loop.steps=80000 loop.eval_every=2000 hydra.sweep.dir=multirun/fig2_5
	$(PY) -m train loop.progress=false experiment=wgan_mixture hydra.run.dir=multirun/fig2_5/wgan
	$(PY) -m train loop.progress=false experiment=wgan_gp_mixture hydra.run.dir=multirun/fig2_5/wgan_gp
	$(PY) scripts/generator_figures.py multirun/fig2_5 --out docs/figures/fig2_5_generators.png --json docs/figures/fig2_5_generators.json
	$(GEN_SWEEP) experiment=generator_digits solver=ipot solver.beta=1.0 hydra.sweep.dir=multirun/fig2_6
	$(GEN_SWEEP) experiment=generator_digits solver=sliced hydra.sweep.dir=multirun/fig2_6
	$(GEN_SWEEP) experiment=generator_digits solver=sinkhorn solver.epsilon=1.0 hydra.sweep.dir=multirun/fig2_6
	$(PY) scripts/generator_figures.py multirun/fig2_6 --out docs/figures/fig2_6_digit_generators.png --json docs/figures/fig2_6_digit_generators.json --title "Digits generators on a 2-D latent grid"
	$(GEN_SWEEP) experiment=generator_grid solver=ipot,sliced hydra.sweep.dir=multirun/grid25
	$(PY) scripts/generator_figures.py multirun/grid25 --out docs/figures/grid25_generators.png --json docs/figures/grid25_generators.json --title "25 Gaussians: IPOT and sliced generators"
	$(PY) -m train experiment=wgan_critic hydra.run.dir=multirun/wgan_critic

clean:
	rm -rf $(VENV) outputs multirun
