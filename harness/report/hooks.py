"""The pictures every run leaves in its directory, drawn by hooks once the record is final (a
report never re-measures: it reads the record and the run's files)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

from oomlab.run.hooks import RunHook
from oomlab.trust import run_python

if TYPE_CHECKING:
    from oomlab.run.view import RunView


PNG_NOTE = "oomlab: timeline.png needs matplotlib (pip install 'oomlab[png]'); report.html has the same charts"
PNG_MISSING = "not drawn: matplotlib is not installed (pip install 'oomlab[png]'); report.html has the same charts"
PNG_NOTED = ".timeline-png-noted"  # in a results directory: the note was printed for its runs once
PNG_ENV = "OOMLAB_TIMELINE"  # "off": no timeline.png (oomlab's own test suite, where a child Python costs ~1.5 s a run)
DRAW_TIMEOUT_SECONDS = 300  # matplotlib's font cache on a first run takes seconds, not minutes
_png_note = threading.Lock()  # held for good once the note is printed: once per process, not per run


def _first_note_here(run_dir: str) -> bool:
    """True once per results directory (and per process): the note is printed for its first run
    only, not on every run and pytest session; each run.json says it all the same."""
    if not _png_note.acquire(blocking=False):
        return False
    marker = os.path.join(os.path.dirname(os.path.abspath(run_dir)), PNG_NOTED)
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        return False
    except OSError:
        pass  # a results directory that takes no marker: the note once per process, as before
    return True


def _installed(name: str) -> bool:
    """The library can be imported here, found without importing it (matplotlib is the child's to load)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class TimelineWriter(RunHook):
    """timeline.png: memory over time, task spans and kills (matplotlib, the optional `png` extra, loaded
    only when drawing; without it run.json says so, the terminal once per results directory, and
    report.html's SVG charts stand alone)."""

    def finished(self, run: RunView) -> None:
        samples = os.path.join(run.run_dir, "samples.csv")
        if not os.path.exists(samples) or os.path.getsize(samples) == 0:
            return  # nothing was sampled (the run stopped before its worker started): no plot
        if not _installed("matplotlib"):
            run.record.environment.timeline_error = PNG_MISSING
            if _first_note_here(run.run_dir):
                print(PNG_NOTE, file=sys.stderr, flush=True)
            return
        if os.environ.get(PNG_ENV) == "off":
            run.record.environment.timeline_error = f"not drawn: {PNG_ENV}=off"
            return
        error = draw_timeline(run.run_dir)
        if error is None:
            run.record.files["timeline"] = "timeline.png"
        else:  # a plot must never cost the user the record
            run.record.environment.timeline_error = error


def draw_timeline(run_dir: str) -> str | None:
    """timeline.png drawn by a short-lived child Python from the run.json just checkpointed: matplotlib
    costs ~50 MiB and a second of imports, which the run's own process (and a long pytest session)
    never holds, and a crash or hang in it ends there. None when drawn, else why not (one line)."""
    try:
        done = run_python(
            "-m", "oomlab.report.timeline", run_dir, capture_output=True, text=True, timeout=DRAW_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        return f"not drawn: the drawing took over {DRAW_TIMEOUT_SECONDS} s"
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1][:500] if lines else f"not drawn: the drawing exited with {done.returncode}"


class ReportWriter(RunHook):
    """report.html: the self-contained page, built from run.json as just written."""

    def finished(self, run: RunView) -> None:
        from oomlab.report.html import REPORT_FILE, write_run_report

        write_run_report(run.run_dir)
        run.record.files["report"] = REPORT_FILE


def standard_hooks() -> list[RunHook]:
    """What `oomlab run`, compare, recommend, the lab and the pytest session attach to every run."""
    from oomlab.run.profile_reader import ProfileReader

    return [ProfileReader(), TimelineWriter(), ReportWriter()]
