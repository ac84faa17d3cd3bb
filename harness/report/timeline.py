"""timeline.png: RSS of every process over time, the group's usage, the limit, task spans, kills."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness.record import RunRecord  # noqa: E402

MIB = 1024 * 1024


def render_timeline(run_dir: str, record: RunRecord) -> str | None:
    samples_path = os.path.join(run_dir, "samples.csv")
    if not os.path.exists(samples_path) or os.path.getsize(samples_path) == 0:
        return None
    samples = pd.read_csv(samples_path)
    group_path = os.path.join(run_dir, "group.csv")
    group = pd.read_csv(group_path) if os.path.exists(group_path) and os.path.getsize(group_path) else None
    t0 = record.started_mono
    roles = {p.pid: p.role for p in record.processes}
    fig, (ax, lanes) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for pid, rows in samples.groupby("pid"):
        ax.plot(rows.t_mono - t0, rows.rss_bytes / MIB, lw=1, label=f"{roles.get(pid, 'child')} {pid}")
    if group is not None:
        ax.plot(group.t_mono - t0, group.usage_bytes / MIB, color="black", lw=1.6, label="group usage")
    ax.axhline(record.config["memory_bytes"] / MIB, color="red", ls="--", lw=1.2, label="limit")
    for kill in record.kills:
        ax.axvline(kill.kernel_time_mono - t0, color="red", alpha=0.5, lw=1)
        ax.annotate(f"kill {kill.pid}", (kill.kernel_time_mono - t0, ax.get_ylim()[1] * 0.95), color="red",
                    fontsize=7, rotation=90, va="top")
    ax.set_ylabel("MiB")
    ax.set_title(f"{record.run_id} · {record.config['scenario']} · {record.status}")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    pids = sorted({e.pid for t in record.tasks for e in t.executions})
    killed_at = {kill.pid: kill.kernel_time_mono for kill in record.kills}
    for task in record.tasks:
        for execution in task.executions:
            end = execution.finished_mono or killed_at.get(execution.pid) or record.ended_mono or execution.started_mono
            color = "tab:red" if execution.killed else "tab:green"
            lanes.barh(pids.index(execution.pid), end - execution.started_mono, left=execution.started_mono - t0,
                       color=color, alpha=0.7)
    lanes.set_yticks(range(len(pids)), [str(p) for p in pids], fontsize=7)
    lanes.set_ylabel("tasks by pid")
    lanes.set_xlabel("seconds since the run started")
    fig.tight_layout()
    path = os.path.join(run_dir, "timeline.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
