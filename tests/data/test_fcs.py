"""Event files (ot_jax.data.fcs): FCS written and read back, a hand-built integer FCS 3.0 file
(big-endian, $PnR masks, an escaped delimiter), CSV, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from ot_jax.data.fcs import load_events, read_events_csv, read_fcs, write_events_csv, write_fcs


def _events(n=37, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.lognormal(6.0, 1.5, size=(n, c)).astype(np.float32).astype(np.float64)


def test_fcs_round_trip(tmp_path):
    events, names = _events(), ["FSC-A", "SSC-A", "FL1/FITC", "FL2-PE"]
    path = tmp_path / "tube.fcs"
    write_fcs(path, events, names)
    assert path.read_bytes()[:6] == b"FCS3.1"
    got_names, got = read_fcs(path)
    assert got_names == names  # "/" in a name is escaped as "//" in TEXT and read back
    np.testing.assert_array_equal(got, events)
    assert load_events(path)[1].shape == (37, 4)


def _fcs30_integers(values: np.ndarray, ranges: list[int]) -> bytes:
    """A minimal FCS 3.0 file by hand: uint16 data, big-endian, offsets in the header."""
    n, c = values.shape
    pairs = {"$BYTEORD": "4,3,2,1", "$DATATYPE": "I", "$MODE": "L", "$PAR": str(c), "$TOT": str(n),
             "$CYT": "Sim|ula//ted"}  # a value with an escaped delimiter
    for j in range(c):
        pairs.update({f"$P{j + 1}N": f"ch{j}", f"$P{j + 1}B": "16", f"$P{j + 1}R": str(ranges[j])})
    text = ("|" + "".join(f"{k}|{v.replace('|', '||')}|" for k, v in pairs.items())).encode()
    data = values.astype(">u2").tobytes()
    t0, d0 = 58, 58 + len(text)
    header = b"FCS3.0    " + b"".join(f"{v:>8d}".encode() for v in (t0, d0 - 1, d0, d0 + len(data) - 1, 0, 0))
    return header + text + data


def test_fcs30_integer_big_endian_with_range_masks(tmp_path):
    raw = np.array([[1, 1030, 65535], [7, 4, 300]], dtype=np.int64)
    path = tmp_path / "old.fcs"
    path.write_bytes(_fcs30_integers(raw, [1024, 1024, 1000]))
    names, events = read_fcs(path)
    assert names == ["ch0", "ch1", "ch2"]
    # $PnR = 1024 (a power of two) masks to 10 bits; 1000 is not a power of two: values as stored
    np.testing.assert_array_equal(events, [[1, 1030 & 1023, 65535], [7, 4, 300]])


def test_csv_round_trip_and_errors(tmp_path):
    events, names = _events(c=3), ["a", "b", "c"]
    path = tmp_path / "events.csv"
    write_events_csv(path, events, names)
    got_names, got = read_events_csv(path)
    assert got_names == names
    np.testing.assert_allclose(got, events, rtol=1e-8)
    np.testing.assert_allclose(load_events(path)[1], events, rtol=1e-8)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(ValueError, match="non-numeric"):
        read_events_csv(bad)


def test_bad_files_raise(tmp_path):
    not_fcs = tmp_path / "x.fcs"
    not_fcs.write_bytes(b"hello" * 20)
    with pytest.raises(ValueError, match="not an FCS file"):
        read_fcs(not_fcs)
    with pytest.raises(ValueError, match="unknown file type"):
        load_events(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="events must be"):
        write_fcs(tmp_path / "y.fcs", np.zeros((3, 2)), ["a"])
