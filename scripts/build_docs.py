"""Build the documentation site: ``make docs`` (``mkdocs build --strict``; HTML in docs/_build/site).

The pages are assembled into ``docs/_build/pages`` (the configuration is ``docs/mkdocs.yml``):

* ``index.md`` is the README, ``changelog.md`` the CHANGELOG, and ``algorithms``,
  ``certification``, ``reproduction``, ``benchmarks`` the pages of ``docs/``; their links
  are rewritten for the site (``docs/x.md`` -> ``x.md``); a link to a repository file
  that is not a page (a config, a script, a module) becomes the file's name in code
  font, since the site does not hold the source tree.
* ``notebooks/`` are the notebooks with their stored outputs (rendered, not executed).
* ``figures/`` is ``docs/figures`` and ``gallery.md`` shows every figure.
* ``api/`` has one page per public package, rendered by mkdocstrings from the docstrings.

Before building, every public name (each package's ``__all__``, and the ``__all__`` of
the submodules those list) must have a docstring: the build fails and lists those
without one. Then ``mkdocs build --strict`` turns every warning (a broken link or
anchor, a page missing from the navigation, an unresolvable API reference) into an error.

    python scripts/build_docs.py            # check docstrings, assemble, build
    python scripts/build_docs.py --serve    # the same, then `mkdocs serve` on the pages
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
PAGES = os.path.join(DOCS, "_build", "pages")
CONFIG = os.path.join(DOCS, "mkdocs.yml")
if REPO not in sys.path:
    sys.path.insert(0, REPO)

__all__ = ["PACKAGES", "missing_docstrings", "documented_parameters", "unknown_parameters", "rewrite_links",
           "assemble", "main"]

# package -> its API page (the names of the navigation in docs/mkdocs.yml)
PACKAGES = {
    "ot_jax.geometry": "geometry.md",
    "ot_jax.solvers": "solvers.md",
    "ot_jax.losses": "losses.md",
    "ot_jax.nn": "nn.md",
    "ot_jax.tools": "tools.md",
    "ot_jax.data": "data.md",
}
GUIDES = ["algorithms.md", "certification.md", "reproduction.md", "benchmarks.md"]
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _public(module: types.ModuleType) -> list[str]:
    return list(getattr(module, "__all__", []))


def _public_modules(name: str) -> list[tuple[str, types.ModuleType]]:
    """``(dotted name, module)`` of the package ``name`` and of the submodules its ``__all__`` lists."""
    package = importlib.import_module(name)
    return [(name, package)] + [(f"{name}.{attr}", getattr(package, attr)) for attr in _public(package)
                                if isinstance(getattr(package, attr), types.ModuleType)]


def _public_objects(packages):
    """``(dotted name, object)`` for each public class or function, once each."""
    seen = set()
    for name in packages:
        for prefix, module in _public_modules(name):
            for attr in _public(module):
                obj = getattr(module, attr)
                if isinstance(obj, types.ModuleType) or not (inspect.isclass(obj) or callable(obj)) or id(obj) in seen:
                    continue
                seen.add(id(obj))
                yield f"{prefix}.{attr}", obj


def missing_docstrings(packages=("ot_jax", *PACKAGES)) -> list[str]:
    """Dotted names of public objects without a docstring (``[]``: all documented).

    Public: each package and the submodules its ``__all__`` lists, and the classes and
    functions in their ``__all__``. A constant is not checked (it has no docstring of its own).
    """
    missing = [prefix for name in packages for prefix, module in _public_modules(name) if not inspect.getdoc(module)]
    missing += [name for name, obj in _public_objects(packages) if not (obj.__doc__ or "").strip()]
    return missing


def documented_parameters(doc: str) -> list[str]:
    """The parameter names an ``Args:`` section of a (dedented) Google-style docstring documents.

    ``a, b: text`` documents ``a`` and ``b``; ``*args`` is ``args``.

    >>> documented_parameters("Sum.\\n\\nArgs:\\n  x, y: arrays.\\n    More on x.\\n  *rest: more.\\n\\nReturns:\\n  z.")
    ['x', 'y', 'rest']
    """
    names, indent, inside = [], None, False
    for line in doc.splitlines():
        if re.match(r"^\s*(Args|Arguments|Parameters):\s*$", line):
            inside, indent = True, None
            continue
        if not inside or not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:
            inside = False
        elif depth == indent:
            match = re.match(r"^\s*([\w*][\w*, ]*?)\s*(\([^)]*\))?:(\s|$)", line)
            if match:
                names += [name.strip().lstrip("*") for name in match.group(1).split(",")]
    return names


def unknown_parameters(packages=("ot_jax", *PACKAGES)) -> list[str]:
    """``"name: parameter"`` for each documented parameter missing from a public function's signature."""
    found = []
    for prefix, obj in _public_objects(packages):
        target = obj.__init__ if inspect.isclass(obj) else obj
        try:
            params = set(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            continue
        for name in documented_parameters(inspect.getdoc(obj) or ""):
            if name not in params:
                found.append(f"{prefix}: {name}")
    return found


def rewrite_links(text: str, here: str, pages: dict[str, str]) -> str:
    """Markdown ``text`` of the repository file ``here`` (relative path) with links for the site.

    ``pages`` maps repository paths (``docs/algorithms.md``, ``README.md``, a figure, a
    notebook) to their paths in the site. A relative link to a mapped path is rewritten
    (its ``#anchor`` kept); one to another repository path becomes that path in code font;
    URLs and in-page anchors are left as they are.
    """
    base = os.path.dirname(here)
    target_dir = os.path.dirname(pages[here])

    def fix(match: re.Match) -> str:
        bang, label, url = match.groups()
        if re.match(r"^[a-z]+:", url) or url.startswith("#"):
            return match.group(0)
        path, _, anchor = url.partition("#")
        repo_path = os.path.normpath(os.path.join(base, path)).replace(os.sep, "/")  # no trailing slash
        if repo_path in pages:
            new = os.path.relpath(pages[repo_path], target_dir or ".").replace(os.sep, "/")
            return f"{bang}[{label}]({new}{'#' + anchor if anchor else ''})"
        if bang:
            raise ValueError(f"{here}: image {url!r} is not in the site")
        return label if label.strip("`") == repo_path else f"{label} (`{repo_path}`)"

    return _LINK.sub(fix, text)


def _api_page(package_name: str) -> str:
    package = importlib.import_module(package_name)
    lines = [f"# `{package_name}`", "", f"::: {package_name}", "    options:", "      members: false",
             "      show_root_heading: false", ""]
    for attr in _public(package):
        obj = getattr(package, attr)
        lines += [f"::: {package_name}.{attr}", ""] if not isinstance(obj, types.ModuleType) else [
            f"::: {obj.__name__}", "    options:", "      heading_level: 2", ""]
    return "\n".join(lines)


def _top_page() -> str:
    import ot_jax

    where = {}
    for package_name, page in PACKAGES.items():
        for _, module in _public_modules(package_name):
            for attr in _public(module):
                where.setdefault(id(getattr(module, attr)), (package_name, page))
    rows = ["| name | documented in |", "|---|---|"]
    for attr in _public(ot_jax):
        package_name, page = where.get(id(getattr(ot_jax, attr)), (None, None))
        rows.append(f"| `ot_jax.{attr}` | " + (f"[`{package_name}`]({page})" if page else "below") + " |")
    undocumented = [a for a in _public(ot_jax) if id(getattr(ot_jax, a)) not in where]
    body = ["# `ot_jax`", "", "::: ot_jax", "    options:", "      members: false", "      show_root_heading: false",
            "", "The names `import ot_jax` exports, and the package page that documents each:", "", *rows, ""]
    for attr in undocumented:
        body += [f"::: ot_jax.{attr}", ""]
    return "\n".join(body)


def _gallery(figures: list[str]) -> str:
    lines = ["# Figure gallery", "",
             "Every figure the experiments and analyses write (`make figures` and the sweep targets redraw them); "
             "[Reproduction](reproduction.md) gives the thesis' claim beside each, the command and the numbers.", ""]
    for name in figures:
        title = os.path.splitext(name)[0]
        match = re.match(r"fig(\d+)_(\d+)_(.*)", title)
        heading = f"Thesis fig. {match.group(1)}.{match.group(2)}: {match.group(3).replace('_', ' ')}" if match else \
            title.replace("_", " ")
        lines += [f"## {heading}", "", f"![{title}](figures/{name})", ""]
    return "\n".join(lines)


def assemble(out: str = PAGES) -> str:
    """Write the site's pages into ``out`` (replaced); returns ``out``."""
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    figures = sorted(f for f in os.listdir(os.path.join(DOCS, "figures")) if f.endswith(".png"))
    notebooks = sorted(f for f in os.listdir(os.path.join(REPO, "notebooks")) if f.endswith(".ipynb"))
    pages = {"README.md": "index.md", "CHANGELOG.md": "changelog.md", "docs/index.md": "index.md",
             "docs": "index.md", "docs/figures": "gallery.md", "notebooks": "index.md"}
    pages.update({f"docs/{g}": g for g in GUIDES})
    pages.update({f"docs/figures/{f}": f"figures/{f}" for f in figures})
    pages.update({f"notebooks/{n}": f"notebooks/{n}" for n in notebooks})
    for source in ["README.md", "CHANGELOG.md", *(f"docs/{g}" for g in GUIDES)]:
        with open(os.path.join(REPO, source), encoding="utf-8") as f:
            text = rewrite_links(f.read(), source, pages)
        with open(os.path.join(out, pages[source]), "w", encoding="utf-8") as f:
            f.write(text)
    shutil.copytree(os.path.join(DOCS, "figures"), os.path.join(out, "figures"),
                    ignore=shutil.ignore_patterns("*.json"))
    os.makedirs(os.path.join(out, "notebooks"))
    for name in notebooks:
        shutil.copy(os.path.join(REPO, "notebooks", name), os.path.join(out, "notebooks", name))
    with open(os.path.join(out, "gallery.md"), "w", encoding="utf-8") as f:
        f.write(_gallery(figures))
    os.makedirs(os.path.join(out, "api"))
    with open(os.path.join(out, "api", "ot_jax.md"), "w", encoding="utf-8") as f:
        f.write(_top_page())
    for package_name, page in PACKAGES.items():
        with open(os.path.join(out, "api", page), "w", encoding="utf-8") as f:
            f.write(_api_page(package_name))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="serve the site locally after building it")
    args = parser.parse_args(argv)
    missing, unknown = missing_docstrings(), unknown_parameters()
    if missing or unknown:
        for title, names in [("public names without a docstring", missing),
                             ("documented parameters that are not in the signature", unknown)]:
            if names:
                print(f"{title}:\n  " + "\n  ".join(names), file=sys.stderr)
        return 1
    assemble()
    mkdocs = [sys.executable, "-m", "mkdocs"]
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # material's banner about a future MkDocs
    result = subprocess.run([*mkdocs, "build", "--strict", "-f", CONFIG], cwd=REPO, env=env)
    if result.returncode == 0 and args.serve:
        result = subprocess.run([*mkdocs, "serve", "-f", CONFIG], cwd=REPO, env=env)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
