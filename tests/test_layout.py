"""The project layout holds: every module imports, ``ot_jax`` never imports ``train``, and no
module imports a ``_private`` name from another package (``ot_jax._checks`` is the one private
module every package of ``ot_jax`` shares)."""

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("ot_jax", "train")


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


MODULES = list(_modules())


def _package_of(module: str) -> str:
    """``ot_jax.losses.spot`` -> ``ot_jax.losses``; ``ot_jax`` -> ``ot_jax``; all of ``train`` is one package."""
    parts = module.split(".")
    return parts[0] if parts[0] == "train" else ".".join(parts[:2])


def _imports(path: pathlib.Path, module: str):
    """``(imported module, imported name or None)`` of every import statement of a file."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                yield source, alias.name


def test_every_module_is_listed():
    names = {m for m, _ in MODULES}
    for expected in ("ot_jax.geometry.neighbors", "ot_jax.losses.spot", "ot_jax.tools.color", "ot_jax.nn.cnf",
                     "ot_jax.solvers.sliced", "train.common", "train.figures.spot", "train.report"):
        assert expected in names


@pytest.mark.parametrize("module", [m for m, _ in MODULES])
def test_module_imports(module):
    importlib.import_module(module)


def test_ot_jax_never_imports_train():
    offenders = [f"{m} imports {src}" for m, path in MODULES if m.startswith("ot_jax")
                 for src, _ in _imports(path, m) if src and (src == "train" or src.startswith("train."))]
    assert not offenders, offenders


def test_no_private_name_crosses_a_package():
    offenders = []
    for module, path in MODULES:
        own = _package_of(module)
        for source, name in _imports(path, module):
            if not source or not source.split(".")[0] in PACKAGES or source == "ot_jax._checks":
                continue
            private_module = any(part.startswith("_") and part != "__init__" for part in source.split(".")[1:])
            private_name = name is not None and name.startswith("_") and name != "__version__"
            if (private_module or private_name) and _package_of(source) != own:
                offenders.append(f"{module}: from {source} import {name}")
    assert not offenders, offenders


def test_importing_ot_jax_loads_no_training_code():
    code = "import sys, ot_jax, ot_jax.losses, ot_jax.tools; print(any(m.split('.')[0] == 'train' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# The README's "Project layout" table: which parts of ot_jax each package may import.
MAY_IMPORT = {
    "ot_jax.geometry": {"ot_jax._checks"},
    "ot_jax.solvers": {"ot_jax._checks", "ot_jax.geometry"},
    "ot_jax.losses": {"ot_jax._checks", "ot_jax.geometry", "ot_jax.solvers", "ot_jax.tools"},
    "ot_jax.tools": {"ot_jax._checks", "ot_jax.geometry", "ot_jax.solvers"},
    "ot_jax.nn": {"ot_jax._checks", "ot_jax.solvers"},
    "ot_jax.data": set(),
}


def test_packages_import_only_what_the_layout_table_allows():
    offenders = []
    for module, path in MODULES:
        own = _package_of(module)
        if own not in MAY_IMPORT:
            continue
        for source, _ in _imports(path, module):
            if not source or source.split(".")[0] != "ot_jax":
                continue
            target = _package_of(source) if source != "ot_jax._checks" else source
            if target != own and target not in MAY_IMPORT[own]:
                offenders.append(f"{module} imports {source}")
    assert not offenders, offenders
