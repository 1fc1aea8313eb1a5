"""scripts/build_docs.py: link rewriting, the docstring checks, the assembled pages (no mkdocs run)."""

from __future__ import annotations

import os

import pytest

from tests.scripts.loader import load_script


@pytest.fixture(scope="module")
def build_docs():
    return load_script("build_docs")


PAGES = {"README.md": "index.md", "docs/algorithms.md": "algorithms.md",
         "docs/figures/a.png": "figures/a.png", "notebooks/01.ipynb": "notebooks/01.ipynb"}


@pytest.mark.parametrize("here, text, expected", [
    ("README.md", "see [the maths](docs/algorithms.md#sinkhorn).", "see [the maths](algorithms.md#sinkhorn)."),
    ("README.md", "![fig](docs/figures/a.png)", "![fig](figures/a.png)"),
    ("docs/algorithms.md", "[home](../README.md) [nb](../notebooks/01.ipynb)",
     "[home](index.md) [nb](notebooks/01.ipynb)"),
    ("README.md", "the [config](conf/config.yaml)", "the config (`conf/config.yaml`)"),
    ("README.md", "[`conf/config.yaml`](conf/config.yaml)", "`conf/config.yaml`"),
    ("README.md", "[POT](https://pythonot.github.io) and [below](#install)",
     "[POT](https://pythonot.github.io) and [below](#install)"),
])
def test_links_point_at_site_pages_or_become_file_names(build_docs, here, text, expected):
    assert build_docs.rewrite_links(text, here, PAGES) == expected


def test_an_image_outside_the_site_is_an_error(build_docs):
    with pytest.raises(ValueError, match="missing.png"):
        build_docs.rewrite_links("![x](docs/figures/missing.png)", "README.md", PAGES)


def test_documented_parameters_read_joint_entries_and_stop_at_the_next_section(build_docs):
    doc = "Sum.\n\nArgs:\n  x, y: arrays,\n    on two lines.\n  *rest: more.\n\nReturns:\n  z: not a parameter."
    assert build_docs.documented_parameters(doc) == ["x", "y", "rest"]
    assert build_docs.documented_parameters("No sections.") == []


def test_every_public_name_has_a_docstring_and_documents_only_its_parameters(build_docs):
    assert build_docs.missing_docstrings() == []
    assert build_docs.unknown_parameters() == []


def test_a_wrong_parameter_name_is_reported(build_docs, monkeypatch):
    import ot_jax

    def fake(x):
        """Do.

        Args:
          y: not the parameter.
        """

    monkeypatch.setattr(ot_jax, "emd", fake)
    assert "ot_jax.emd: y" in build_docs.unknown_parameters(("ot_jax",))


def test_the_assembled_pages_hold_every_navigation_entry(build_docs, tmp_path):
    import yaml

    out = build_docs.assemble(str(tmp_path / "pages"))
    with open(build_docs.CONFIG, encoding="utf-8") as f:
        nav = yaml.safe_load(f)["nav"]

    def entries(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from entries(item)
        else:
            for value in node.values():
                yield from entries(value)

    paths = list(entries(nav))
    assert len(paths) > 15 and all(os.path.isfile(os.path.join(out, p)) for p in paths), paths
    assert "::: ot_jax.solvers" in (tmp_path / "pages" / "api" / "solvers.md").read_text()
