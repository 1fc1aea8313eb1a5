"""Execute every notebooks/*.ipynb and fail if any cell raises (all but the newest under ``-m slow``).

The notebooks run in a ``python3`` kernel started from this interpreter (ipykernel's
kernelspec names ``python``, which jupyter_client replaces by ``sys.executable``), in
the notebook's own directory, with ``OT_JAX_NB_SMALL=1`` (smaller problems) and
``MPLBACKEND=Agg`` (no display).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
from nbclient.exceptions import CellExecutionError  # noqa: E402

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
BUILDERS = sorted(NOTEBOOK_DIR.glob("_build_*.py"))
CELL_TIMEOUT_S = 300
# Executed in the fast suite: the newest notebook; the others run under ``-m slow`` (make test-slow)
# — their code paths are tested directly, and every notebook's stored outputs and builder are
# checked below in the fast suite.
FAST_NOTEBOOKS = {"05_wmd.ipynb"}

# Appended to the in-memory copy only: the kernel must be this interpreter's environment,
# or the notebook would exercise some other installation of ot_jax.
_PREFIX_PROBE = "import sys; print(sys.prefix)"


def _ids(paths):
    return [p.name for p in paths]


@pytest.mark.parametrize("path", [p if p.name in FAST_NOTEBOOKS else pytest.param(p, marks=pytest.mark.slow)
                                  for p in NOTEBOOKS], ids=_ids(NOTEBOOKS))
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("OT_JAX_NB_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PREFIX_PROBE))
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name}: a cell raised\n{err}", pytrace=False)

    errors = [
        (i, out.get("ename"), out.get("evalue"))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: cells raised {errors}"
    probe = "".join(out.get("text", "") for out in nb.cells[-1].outputs).strip()
    assert probe == sys.prefix, f"{path.name} ran in a kernel from {probe!r}, expected {sys.prefix!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_with_its_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    bare = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.get("execution_count") is None]
    assert not bare, f"{path.name}: cells {bare} were never executed; regenerate it with its builder"


@pytest.mark.parametrize("builder", BUILDERS, ids=_ids(BUILDERS))
def test_notebook_matches_its_builder(builder):
    spec = importlib.util.spec_from_file_location(builder.stem, builder)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = module.OUT
    assert target.exists(), f"{builder.name} writes {target.name}, which is missing"
    stored = nbformat.read(target, as_version=4)
    cells = lambda nb: [(c.cell_type, c.source) for c in nb.cells]  # noqa: E731
    assert cells(module.build()) == cells(stored), (
        f"{target.name} differs from what {builder.name} generates: run `python notebooks/{builder.name}`"
    )
    outputs = [o for c in stored.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs), (
        f"{target.name} is stored without its plots: run `python notebooks/{builder.name}`"
    )
