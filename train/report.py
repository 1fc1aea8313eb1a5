"""Tables over runs: console tables, the JSON/CSV writers of the run files, and a report of many runs.

* :func:`format_table` / :func:`fmt`: plain-text tables of the experiments' console output.
* :func:`to_jsonable`: the one JSON cleaner of ``train/`` (``metrics.json``, ``metrics.jsonl``):
  NaN/inf become the strings ``"nan"``, ``"inf"``, ``"-inf"``; NumPy/JAX scalars and arrays
  become Python numbers and lists.
* :func:`write_csv`: records (``metrics.jsonl`` lines, report rows) as a CSV file.
* ``python -m train.report DIR [DIR ...] [--csv out.csv] [--markdown out.md] [--metrics a,b]``:
  one row per run directory found under the DIRs (a directory holding ``metrics.json``; a
  multirun directory holds one per job): the job's Hydra overrides (``.hydra/overrides.yaml``),
  one column per overridden key, then the scalars of its ``metrics.json`` with the training
  time (``steps``, ``train_seconds``, ``steps_per_second``) last. Jobs that have not finished
  (no ``metrics.json`` yet) are listed on stderr with their last logged step.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["format_table", "fmt", "to_jsonable", "write_csv", "find_runs", "runs_table", "markdown_table", "main"]


def fmt(value, spec: str = ".3e") -> str:
    """Format numbers with ``spec``; None -> '-', strings unchanged."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return format(float(value), spec)


def format_table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    """Right-aligned columns (first column left-aligned); cells formatted by :func:`fmt`."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(items):
        return "  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(items, widths)))

    out = [title] if title else []
    out += [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def to_jsonable(value: Any) -> Any:
    """``value`` with every part JSON can hold: dicts (string keys), lists, finite floats, ints, str, bool, None.

    NaN and inf become the strings ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has no such numbers);
    NumPy/JAX scalars become Python numbers and arrays nested lists; tuples become lists.

    >>> to_jsonable({"loss": float("nan"), "w": (1.0, float("inf"))})
    {'loss': 'nan', 'w': [1.0, 'inf']}
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "ndim"):  # NumPy / JAX scalars and arrays
        value = value.tolist()
        if isinstance(value, list):
            return to_jsonable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _csv_cell(value: Any) -> Any:
    value = to_jsonable(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return "" if value is None else value


def write_csv(records: Iterable[dict], path: str, *, first: Sequence[str] = ("step",)) -> str:
    """Write ``records`` to the CSV file ``path``, one row each; returns ``path``.

    The columns are the union of the records' keys in order of appearance, with ``first``
    (those present) in front; a missing value is an empty cell, a list a JSON string.
    """
    records = list(records)
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    names = [c for c in first if c in columns] + [c for c in columns if c not in first]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for record in records:
            writer.writerow([_csv_cell(record[c]) if c in record else "" for c in names])
    return path


def _natural(text: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]


def _overrides(job_dir: str) -> dict[str, str]:
    path = os.path.join(job_dir, ".hydra", "overrides.yaml")
    if not os.path.exists(path):
        return {}
    import yaml

    with open(path) as fh:
        items = yaml.safe_load(fh) or []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def _last_logged_step(job_dir: str) -> int | None:
    path = os.path.join(job_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    step = None
    with open(path) as fh:
        for line in fh:
            if line.strip():
                step = json.loads(line).get("step", step)
    return step


def find_runs(dirs: Sequence[str]) -> tuple[list[dict], list[tuple[str, int | None]]]:
    """The run directories under ``dirs``.

    Returns:
      ``(runs, unfinished)``: ``runs`` one dict per directory holding ``metrics.json``
      (``job``: its path, relative to the directory of ``dirs`` when there is only one;
      ``overrides``: key -> value of ``.hydra/overrides.yaml``; ``metrics``: the scalars
      of ``metrics.json``), in natural order of the paths;
      ``unfinished`` the ``(path, last logged step or None)`` of Hydra job directories
      (``.hydra/`` present) without ``metrics.json``.

    Raises:
      FileNotFoundError: a directory of ``dirs`` does not exist.
    """
    runs, unfinished = [], []
    for top in dirs:
        if not os.path.isdir(top):
            raise FileNotFoundError(f"report: {top!r} is not a directory")
        for here, subdirs, files in os.walk(top):
            subdirs[:] = sorted((d for d in subdirs if d not in ("checkpoints", ".hydra", "tensorboard")),
                                key=_natural)
            if "metrics.json" in files:
                with open(os.path.join(here, "metrics.json")) as fh:
                    metrics = json.load(fh)
                scalars = {k: v for k, v in metrics.items() if not isinstance(v, list | dict)}
                job = here if len(dirs) > 1 else (os.path.relpath(here, top) if here != top else top)
                runs.append({"job": job, "overrides": _overrides(here), "metrics": scalars})
            elif os.path.isdir(os.path.join(here, ".hydra")):
                unfinished.append((here, _last_logged_step(here)))
    runs.sort(key=lambda r: _natural(r["job"]))
    return runs, unfinished


TIME_COLUMNS = ("steps", "train_seconds", "steps_per_second")


def runs_table(runs: Sequence[dict], metrics: Sequence[str] | None = None) -> tuple[list[str], list[list]]:
    """``(headers, rows)`` of :func:`find_runs`' runs: ``job``, the override keys, the metrics.

    Args:
      runs: from :func:`find_runs`.
      metrics: the metric columns to keep (default: every scalar of every ``metrics.json``,
        with :data:`TIME_COLUMNS` last).

    Raises:
      KeyError: a name of ``metrics`` is in no run's ``metrics.json`` (the message lists the known ones).
    """
    override_keys = list(dict.fromkeys(k for r in runs for k in r["overrides"]))
    known = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    if metrics is None:
        metrics = [k for k in known if k not in TIME_COLUMNS] + [k for k in TIME_COLUMNS if k in known]
    else:
        missing = [m for m in metrics if m not in known]
        if missing:
            raise KeyError(f"report: metric(s) {', '.join(missing)} in no metrics.json; known: {', '.join(known)}")
    headers = ["job", *override_keys, *metrics]
    rows = [[r["job"], *(r["overrides"].get(k) for k in override_keys), *(r["metrics"].get(m) for m in metrics)]
            for r in runs]
    return headers, rows


def _cell(value: Any) -> str:
    return fmt(value, ".4g")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured Markdown table (numbers to 4 significant digits, right-aligned)."""
    def escape(text: str) -> str:
        return text.replace("|", r"\|")

    def number(value) -> bool:
        return value is None or isinstance(value, int | float) or value in ("nan", "inf", "-inf")

    numeric = [i > 0 and all(number(r[i]) for r in rows) for i in range(len(headers))]
    out = ["| " + " | ".join(escape(h) for h in headers) + " |",
           "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    out += ["| " + " | ".join(escape(_cell(c)) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m train.report``: print (and optionally save) the table of runs; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m train.report",
        description="One row per run directory (holding metrics.json) under the given directories: "
                    "the job's overrides, its final metrics and training time.")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run or multirun directories")
    parser.add_argument("--csv", metavar="PATH", help="also write the table as CSV (full precision)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    parser.add_argument("--metrics", metavar="A,B", help="comma-separated metric columns (default: all scalars)")
    args = parser.parse_args(argv)
    try:
        runs, unfinished = find_runs(args.dirs)
        chosen = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
        headers, rows = runs_table(runs, chosen)
    except (FileNotFoundError, KeyError) as err:
        print(err.args[0], file=sys.stderr)
        return 2
    for path, step in unfinished:
        print(f"not finished: {path} (last logged step: {step if step is not None else 'none'})", file=sys.stderr)
    if not runs:
        print(f"report: no metrics.json under {', '.join(args.dirs)}", file=sys.stderr)
        return 1
    print(format_table(headers, [[_cell(c) for c in row] for row in rows]))
    if args.csv:
        write_csv([dict(zip(headers, row)) for row in rows], args.csv, first=())
        print(f"csv: {args.csv}")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(markdown_table(headers, rows))
        print(f"markdown: {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
