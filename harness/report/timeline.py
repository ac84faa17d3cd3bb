"""timeline.png: RSS of every process over time, the group's usage, the limit, task spans, kills.

`python -m oomlab.report.timeline RUN_DIR` draws it from the run's record: the run starts it as a child
(oomlab.report.hooks.draw_timeline), so matplotlib never lives in the run's own process."""

from __future__ import annotations

import logging
import os
import sys

# "Matplotlib is building the font cache" on a user's first run: not a line for oomlab's stderr
logging.getLogger("matplotlib").setLevel(logging.ERROR)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from oomlab.record.files import csv_curves  # noqa: E402
from oomlab.record.schema import RunRecord, load_run  # noqa: E402
from oomlab.trust import open_in_dir  # noqa: E402

MIB = 1024 * 1024
BUCKETS = 1000  # about a pixel each across the figure: the sampled extremes of each kept


def render_timeline(run_dir: str, record: RunRecord) -> str | None:
    curves = csv_curves(os.path.join(run_dir, "samples.csv"), "t_mono", "rss_bytes", key="pid", buckets=BUCKETS)
    by_pid = {int(pid): points for pid, points in curves.items()}
    if not by_pid:
        return None
    group = csv_curves(os.path.join(run_dir, "group.csv"), "t_mono", "usage_bytes", buckets=BUCKETS).get("", [])
    t0 = record.started_mono
    roles = {p.pid: p.role for p in record.processes}
    fig, (ax, lanes) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for pid, rows in sorted(by_pid.items()):
        ax.plot(
            [t - t0 for t, _ in rows], [rss / MIB for _, rss in rows], lw=1, label=f"{roles.get(pid, 'child')} {pid}"
        )
    if group:
        ax.plot(
            [t - t0 for t, _ in group], [usage / MIB for _, usage in group], color="black", lw=1.6, label="group usage"
        )
    ax.axhline(record.config.memory_bytes / MIB, color="red", ls="--", lw=1.2, label="limit")
    for kill in record.kills:
        ax.axvline(kill.kernel_time_mono - t0, color="red", alpha=0.5, lw=1)
        ax.annotate(
            f"kill {kill.pid}",
            (kill.kernel_time_mono - t0, ax.get_ylim()[1] * 0.95),
            color="red",
            fontsize=7,
            rotation=90,
            va="top",
        )
    ax.set_ylabel("MiB")
    ax.set_title(f"{record.run_id} · {record.config.scenario} · {record.status}")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    pids = sorted({e.pid for t in record.tasks for e in t.executions})
    killed_at = {kill.pid: kill.kernel_time_mono for kill in record.kills}
    for task in record.tasks:
        for execution in task.executions:
            end = execution.finished_mono or killed_at.get(execution.pid) or record.ended_mono or execution.started_mono
            color = "tab:red" if execution.killed else "tab:green"
            lanes.barh(
                pids.index(execution.pid),
                end - execution.started_mono,
                left=execution.started_mono - t0,
                color=color,
                alpha=0.7,
            )
    lanes.set_yticks(range(len(pids)), [str(p) for p in pids], fontsize=7)
    lanes.set_ylabel("tasks by pid")
    lanes.set_xlabel("seconds since the run started")
    fig.tight_layout()
    path = os.path.join(run_dir, "timeline.png")
    with open_in_dir(path, "wb") as handle:
        fig.savefig(handle, dpi=110, format="png")
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    """Draw RUN_DIR's timeline.png; on failure, one line on stderr (the run keeps it as timeline_error)."""
    [run_dir] = argv
    try:
        drawn = render_timeline(run_dir, load_run(run_dir))
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if drawn is None:
        print("not drawn: no process was sampled", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
