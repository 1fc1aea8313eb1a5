"""What the notebook builders (``_build_*.py``) share: cell constructors, the notebook, its execution.

A builder defines ``OUT`` (the ``.ipynb`` it writes), ``CELLS`` (made with :func:`md` and
:func:`code`) and ``build()``; run as a script it writes the notebook executed at full size
(``python notebooks/_build_01_solvers.py``).
"""

from __future__ import annotations

import os
import pathlib
import textwrap

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

__all__ = ["md", "code", "build", "execute", "write"]


def md(text: str):
    """A markdown cell of ``text`` (dedented, stripped)."""
    return new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str):
    """A code cell of ``text`` (dedented, stripped)."""
    return new_code_cell(textwrap.dedent(text).strip())


def build(cells) -> nbformat.NotebookNode:
    """The notebook of ``cells``, with stable cell ids (regenerating an unchanged notebook gives an identical file)."""
    nb = new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


def execute(nb: nbformat.NotebookNode, folder: pathlib.Path) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel in ``folder`` (full sizes; inline plots)."""
    from nbclient import NotebookClient

    os.environ.pop("OT_JAX_NB_SMALL", None)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend stores the figures as PNG
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(folder)}}).execute()
    for cell in nb.cells:  # drop timing metadata: a rerun changes only what the cells print
        cell.get("metadata", {}).pop("execution", None)
    return nb


def write(nb: nbformat.NotebookNode, out: pathlib.Path) -> None:
    """Execute ``nb`` and write it to ``out``."""
    nbformat.write(execute(nb, out.parent), out)
    print(f"wrote {out} ({len(nb.cells)} cells, executed)")
