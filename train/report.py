"""Plain-text tables for the experiments' console output."""

from __future__ import annotations

__all__ = ["format_table", "fmt"]


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
