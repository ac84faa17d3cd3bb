"""A run directory's files read back: the probe's JSON lines and the sampler's CSV files (a file
not there reads as empty: a run stopped early wrote none)."""

from __future__ import annotations

import csv

from harness.probe_events import decode


def read_probe(path: str) -> list[dict]:
    try:
        with open(path) as handle:
            return [record for line in handle if (record := decode(line)) is not None]
    except FileNotFoundError:
        return []


def csv_rows(path: str) -> list[dict]:
    try:
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        return []
