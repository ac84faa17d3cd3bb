"""pandas parses a CSV in one go: its C tokenizer's buffers come from malloc, outside Python's
allocator, so tracemalloc (and gc) see a fraction of what RSS does. Reading in chunks bounds both."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import MIB, cached_input, scenario_app

description = "pandas reads a whole CSV (C-extension memory tracemalloc cannot see); fixed: reads it in chunks"
app = scenario_app("native-alloc")
PARAMS = [
    Param("csv_mib", 32, "size of the generated CSV file"),
    Param("chunk_rows", 100_000, "rows per chunk (fixed)"),
]
DEFAULTS: dict[str, Any] = {"memory": "320MiB", "concurrency": 2, "tasks": 2, "tracemalloc": True}
VARIANTS = [
    Variant("bad", "pd.read_csv(path) on the whole file, then a groupby"),
    Variant("fixed", "pd.read_csv(path, chunksize=chunk_rows), aggregating chunk by chunk"),
]
BLOCK_ROWS = 100_000


@app.task(name="native_alloc.mean_by_key")
def mean_by_key(path: str, chunk_rows: int) -> dict:
    if chunk_rows:
        parts = [chunk.groupby("key")["x"].agg(["sum", "count"]) for chunk in pd.read_csv(path, chunksize=chunk_rows)]
        totals = pd.concat(parts).groupby(level=0).sum()
        means = totals["sum"] / totals["count"]
    else:
        means = pd.read_csv(path).groupby("key")["x"].mean()
    return {int(key): float(value) for key, value in means.head(3).items()}


def _write_csv(mib: float):
    def make(path: str) -> None:
        rng = np.random.default_rng(7)
        block = pd.DataFrame(
            {
                "id": np.arange(BLOCK_ROWS),
                "x": rng.random(BLOCK_ROWS),
                "y": rng.random(BLOCK_ROWS),
                "key": rng.integers(0, 1000, BLOCK_ROWS),
            }
        ).to_csv(index=False)
        header, body = block.split("\n", 1)
        with open(path, "w") as handle:
            handle.write(header + "\n")
            written = 0
            while written < mib * MIB:  # the same block repeated: generated in a moment
                handle.write(body)
                written += len(body)

    return make


def plan(ctx: RunContext) -> Plan:
    mib = ctx.params["csv_mib"]
    path = cached_input(ctx.input_path(f"table-{mib:g}MiB.csv"), _write_csv(mib))
    chunk_rows = ctx.params["chunk_rows"] if ctx.variant == "fixed" else 0
    return Plan(
        [
            TaskCall(mean_by_key.name, (path, chunk_rows), label=f"{mib:g} MiB CSV")
            for _ in range(ctx.tasks or DEFAULTS["tasks"])
        ],
        timeout=90.0,
    )
