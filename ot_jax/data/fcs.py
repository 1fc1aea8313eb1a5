"""Flow-cytometry event files on disk: FCS (2.0, 3.0, 3.1 list mode) and CSV.

Nothing is downloaded: point these at files your instrument or repository exported. An
*event table* is ``(names, events)``: the channel names (``$PnN`` in FCS, the header row in
CSV) and a ``[n_events, n_channels]`` float64 array, one row per cell.

FCS layout (Spidlen et al. 2010): a 58-byte ASCII HEADER (``FCS3.1``, four spaces, then the
byte offsets of the TEXT, DATA and ANALYSIS segments as right-aligned 8-character integers),
a TEXT segment of ``/key/value/...`` pairs whose first byte is the delimiter (a doubled
delimiter inside a value is a literal one), and the DATA segment. Read here: ``$MODE`` L
(list mode), ``$DATATYPE`` F (float32), D (float64) or I (unsigned integers of ``$PnB`` =
8, 16, 32 or 64 bits, masked to ``$PnR`` when it is a power of two), ``$BYTEORD`` ``1,2,3,4``
(little-endian) or ``4,3,2,1`` (big-endian); offsets beyond 99,999,999 bytes come from
``$BEGINDATA`` / ``$ENDDATA``. Values are returned as stored (channel values, no
compensation or transform applied).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["read_fcs", "write_fcs", "read_events_csv", "write_events_csv", "load_events"]

_FLOATS = {"F": "f4", "D": "f8"}


def _parse_text(raw: bytes) -> dict[str, str]:
    """The TEXT segment's keywords (upper-cased) and values."""
    text = raw.decode("latin-1")
    if not text:
        raise ValueError("read_fcs: empty TEXT segment")
    delim = text[0]
    fields, cur, i = [], [], 1
    while i < len(text):
        ch = text[i]
        if ch == delim:
            if i + 1 < len(text) and text[i + 1] == delim:  # escaped delimiter
                cur.append(delim)
                i += 2
                continue
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if cur and "".join(cur).strip():
        fields.append("".join(cur))
    if len(fields) % 2:
        fields = fields[:-1]
    return {fields[k].strip().upper(): fields[k + 1] for k in range(0, len(fields), 2)}


def read_fcs(path) -> tuple[list[str], np.ndarray]:
    """Read the events of an FCS file (list mode).

    Args:
      path: an ``.fcs`` file.

    Returns:
      ``(names, events)``: the ``$PnN`` channel names and a ``[n_events, n_channels]`` float64
      array.

    Raises:
      ValueError: the file is not FCS, or uses a mode, data type or byte order this reader
        does not handle (the message names it).
    """
    with open(path, "rb") as fh:
        blob = fh.read()
    version = blob[:6].decode("latin-1", "replace")
    if not version.startswith("FCS") or len(blob) < 58:
        raise ValueError(f"read_fcs: {os.fspath(path)!r} is not an FCS file (header {version!r})")
    try:
        t0, t1, d0, d1 = (int(blob[10 + 8 * k:18 + 8 * k].decode("latin-1").strip() or 0) for k in range(4))
    except ValueError as err:
        raise ValueError(f"read_fcs: {os.fspath(path)!r} has a malformed header") from err
    keys = _parse_text(blob[t0:t1 + 1])
    if d0 == 0 and d1 == 0:
        d0, d1 = int(keys.get("$BEGINDATA", 0)), int(keys.get("$ENDDATA", 0))
    mode = keys.get("$MODE", "L").strip().upper()
    if mode != "L":
        raise ValueError(f"read_fcs: only list-mode files ($MODE L) are read, got $MODE {mode}")
    n_par, n_tot = int(keys["$PAR"]), int(keys.get("$TOT", 0))
    names = [keys.get(f"$P{j}N", f"P{j}").strip() for j in range(1, n_par + 1)]
    order = keys.get("$BYTEORD", "1,2,3,4").replace(" ", "")
    if order in ("1,2,3,4", "1,2"):
        endian = "<"
    elif order in ("4,3,2,1", "2,1"):
        endian = ">"
    else:
        raise ValueError(f"read_fcs: $BYTEORD {order} (mixed byte order) is not handled")
    dtype = keys.get("$DATATYPE", "").strip().upper()
    data = blob[d0:d1 + 1]
    if dtype in _FLOATS:
        events = np.frombuffer(data, dtype=endian + _FLOATS[dtype])
        n_tot = n_tot or events.size // n_par
        events = events[: n_tot * n_par].reshape(n_tot, n_par).astype(np.float64)
    elif dtype == "I":
        bits = [int(keys[f"$P{j}B"]) for j in range(1, n_par + 1)]
        if any(b not in (8, 16, 32, 64) for b in bits):
            raise ValueError(f"read_fcs: integer data with $PnB {sorted(set(bits))} (only 8, 16, 32, 64 bits)")
        rec = np.dtype([(f"p{j}", f"{endian}u{b // 8}") for j, b in enumerate(bits)])
        n_tot = n_tot or len(data) // rec.itemsize
        table = np.frombuffer(data[: n_tot * rec.itemsize], dtype=rec)
        cols = []
        for j in range(n_par):
            col = table[f"p{j}"].astype(np.uint64)
            rng = int(float(keys.get(f"$P{j + 1}R", 0)) or 0)
            if rng > 0 and rng & (rng - 1) == 0:
                col = col & np.uint64(rng - 1)
            cols.append(col.astype(np.float64))
        events = np.stack(cols, axis=1)
    else:
        raise ValueError(f"read_fcs: $DATATYPE {dtype!r} is not handled (F, D or I)")
    return names, events


def write_fcs(path, events, names) -> None:
    """Write ``events: [n_events, n_channels]`` as an FCS 3.1 list-mode file (float32,
    little-endian) with channel names ``names`` (``$PnN``; ``$PnR`` the column maximum)."""
    events = np.asarray(events, np.float64)
    if events.ndim != 2 or events.shape[1] != len(names):
        raise ValueError(f"write_fcs: events must be [n_events, {len(names)}], got {events.shape}")
    pairs = [("$BEGINANALYSIS", "0"), ("$ENDANALYSIS", "0"), ("$BEGINSTEXT", "0"), ("$ENDSTEXT", "0"),
             ("$BYTEORD", "1,2,3,4"), ("$DATATYPE", "F"), ("$MODE", "L"), ("$NEXTDATA", "0"),
             ("$PAR", str(events.shape[1])), ("$TOT", str(events.shape[0]))]
    for j, name in enumerate(names, 1):
        top = float(np.max(events[:, j - 1])) if events.size else 1.0
        pairs += [(f"$P{j}N", str(name)), (f"$P{j}B", "32"), (f"$P{j}E", "0,0"), (f"$P{j}R", f"{max(top, 1.0):.0f}")]
    data = events.astype("<f4").tobytes()

    def text_of(begin, end):
        items = pairs + [("$BEGINDATA", str(begin)), ("$ENDDATA", str(end))]
        return ("/" + "".join(f"{k.replace('/', '//')}/{v.replace('/', '//')}/" for k, v in items)).encode("latin-1")

    t0 = 58
    begin = t0 + len(text_of(0, 0)) + 40  # room for the offsets' digits
    text = text_of(begin, begin + len(data) - 1)
    text += b" " * (begin - t0 - len(text))
    end = begin + len(data) - 1
    big = end > 99_999_999
    header = "FCS3.1    " + "".join(f"{v:>8d}" for v in (t0, t0 + len(text) - 1, 0 if big else begin,
                                                           0 if big else end, 0, 0))
    with open(path, "wb") as fh:
        fh.write(header.encode("latin-1") + text + data)


def read_events_csv(path, *, delimiter: str = ",") -> tuple[list[str], np.ndarray]:
    """Read an event table from a CSV file: a header row of channel names, then one row of
    numbers per event. Returns ``(names, events [n_events, n_channels] float64)``."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
    names = [h.strip().strip('"') for h in header.rstrip("\n").split(delimiter)]
    if not header.strip() or not all(names):
        raise ValueError(f"read_events_csv: {os.fspath(path)!r} needs a header row of channel names")
    try:
        events = np.loadtxt(path, delimiter=delimiter, skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"read_events_csv: {os.fspath(path)!r} has a non-numeric value: {err}") from err
    if events.shape[1] != len(names):
        raise ValueError(f"read_events_csv: {len(names)} names in the header but {events.shape[1]} columns")
    return names, events


def write_events_csv(path, events, names) -> None:
    """Write ``events: [n_events, n_channels]`` with a header row of ``names``."""
    events = np.asarray(events, np.float64)
    if events.ndim != 2 or events.shape[1] != len(names):
        raise ValueError(f"write_events_csv: events must be [n_events, {len(names)}], got {events.shape}")
    np.savetxt(path, events, delimiter=",", header=",".join(names), comments="", fmt="%.9g")


def load_events(path) -> tuple[list[str], np.ndarray]:
    """``(names, events)`` of an ``.fcs`` or ``.csv`` file (by its suffix, case-insensitive)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".fcs":
        return read_fcs(path)
    if suffix in (".csv", ".txt"):
        return read_events_csv(path)
    raise ValueError(f"load_events: unknown file type {suffix!r} of {os.fspath(path)!r} (.fcs or .csv)")
