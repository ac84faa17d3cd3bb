"""The pictures every run leaves in its directory, drawn by hooks once the record is final (a
report never re-measures: it reads the record and the run's files)."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from oomlab.run.hooks import RunHook

if TYPE_CHECKING:
    from oomlab.run.view import RunView


PNG_NOTE = "oomlab: timeline.png needs matplotlib (pip install 'oomlab[png]'); report.html has the same charts"
PNG_MISSING = "not drawn: matplotlib is not installed (pip install 'oomlab[png]'); report.html has the same charts"
PNG_NOTED = ".timeline-png-noted"  # in a results directory: the note was printed for its runs once
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


class TimelineWriter(RunHook):
    """timeline.png: memory over time, task spans and kills (matplotlib, the optional `png` extra, loaded
    only when drawing; without it run.json says so, the terminal once per results directory, and
    report.html's SVG charts stand alone)."""

    def finished(self, run: RunView) -> None:
        samples = os.path.join(run.run_dir, "samples.csv")
        if not os.path.exists(samples) or os.path.getsize(samples) == 0:
            return  # nothing was sampled (the run stopped before its worker started): no plot
        try:
            from oomlab.report.timeline import render_timeline
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] != "matplotlib":
                raise
            run.record.environment.timeline_error = PNG_MISSING
            if _first_note_here(run.run_dir):
                print(PNG_NOTE, file=sys.stderr, flush=True)
            return
        try:
            render_timeline(run.run_dir, run.record)
            run.record.files["timeline"] = "timeline.png"
        except Exception as exc:  # a plot must never cost the user the record
            run.record.environment.timeline_error = f"{type(exc).__name__}: {exc}"


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
