"""The sampler's CSV files are read back as curves in memory of the picture, not of the file: a
40-minute load run's samples.csv (22 MB) took the report and the timeline to 587 MB when read whole."""

from __future__ import annotations

import csv
import itertools
import tracemalloc

from oomlab.record.files import csv_curves, envelope

ROWS_PER_PID = 50_000
PIDS = (101, 202, 303, 404)


def write_samples(path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_mono", "pid", "rss_bytes", "pss_bytes", "uss_bytes"])
        for i in range(ROWS_PER_PID):
            for pid in PIDS:
                rss = 50_000_000 + (i % 97) * 4096 + (900_000_000 if pid == 303 and i == 31_337 else 0)
                writer.writerow([f"{1000 + i * 0.01:.6f}", pid, rss, "", ""])
        writer.writerow(["1500.5", "101", "", "", ""])  # a blank cell: skipped


def test_curves_keep_every_buckets_extremes_in_memory_of_the_buckets(tmp_path):
    path = tmp_path / "samples.csv"
    write_samples(path)
    tracemalloc.start()
    curves = csv_curves(str(path), "t_mono", "rss_bytes", key="pid", buckets=500)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sorted(curves) == sorted(str(pid) for pid in PIDS)
    assert all(len(points) <= 1000 for points in curves.values())
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MiB held to read {ROWS_PER_PID * len(PIDS)} rows"
    spike = max(curves["303"], key=lambda point: point[1])
    assert spike == (1000 + 31_337 * 0.01, 950_000_000 + (31_337 % 97) * 4096)  # the sampled value, at its time
    assert max(v for _, v in curves["101"]) == 50_000_000 + 96 * 4096
    assert all(a[0] <= b[0] for points in curves.values() for a, b in itertools.pairwise(points))


def test_a_file_not_there_or_without_the_columns_reads_as_no_curve(tmp_path):
    assert csv_curves(str(tmp_path / "none.csv"), "t_mono", "rss_bytes") == {}
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert csv_curves(str(other), "t_mono", "rss_bytes") == {}


def test_an_envelope_of_few_points_keeps_them():
    points = [(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)]
    assert envelope(points, 0.0, 2.0, 10) == points
