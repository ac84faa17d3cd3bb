"""Tasks receive multi-MiB payloads as arguments. The message passes through the worker's main
process (which also holds every prefetched message) before the child decodes it again."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import MIB, cached_input, scenario_app

description = "tasks receive multi-MiB base64 payloads as arguments; the main process holds them too"
app = scenario_app("large-args")
PARAMS = [
    Param("payload_mib", 2, "MiB of data behind each task (4 gets the main process itself killed at 256MiB)"),
]
DEFAULTS: dict[str, Any] = {"memory": "256MiB", "concurrency": 2, "tasks": 8}
VARIANTS = [
    Variant("bad", "the payload travels in the message, base64-encoded"),
    Variant("fixed", "the message carries a path; the task reads the file itself"),
]


@app.task(name="large_args.checksum_payload")
def checksum_payload(payload_b64: str) -> str:
    return hashlib.sha256(base64.b64decode(payload_b64)).hexdigest()


@app.task(name="large_args.checksum_file")
def checksum_file(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _write_payload(index: int, mib: float):
    def make(path: str) -> None:
        with open(path, "wb") as handle:
            handle.write(index.to_bytes(8, "little") * int(mib * MIB // 8))

    return make


def plan(ctx: RunContext) -> Plan:
    mib = ctx.params["payload_mib"]
    calls = []
    for index in range(ctx.tasks or DEFAULTS["tasks"]):
        path = cached_input(ctx.input_path(f"payload-{mib:g}MiB-{index}.bin"), _write_payload(index, mib))
        if ctx.variant == "fixed":
            calls.append(TaskCall(checksum_file.name, (path,), label=os.path.basename(path)))
        else:
            with open(path, "rb") as handle:
                payload = base64.b64encode(handle.read()).decode()
            calls.append(TaskCall(checksum_payload.name, (payload,), label=f"{mib:g} MiB inline"))
    return Plan(calls, timeout=60.0)
