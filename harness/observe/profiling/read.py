"""A memray capture read back: the allocation sites that held the memory at the task's high-water
mark (or, for a task the kernel killed, at the capture's last record), each named by a Python frame.

A pool child writes one capture for its whole life; each chosen task's window in it lies between two
marks the probe allocates (oomlab.probe.profile_choice). `read_windows` replays the capture's records
in order and finds, inside each window, the moment the allocations made in the window held the most,
and which were held then: the same figure a tracker started at prerun and stopped at postrun gives,
found in the order memray recorded the allocations (exact, not sampled by time).

memray's FileReader reads a capture whose writer was SIGKILLed: its records went through a shared
mapping of the file, so everything up to the last allocation is there; only the header's summary
(end time) is missing."""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from oomlab.probe.profile_choice import END_FUNCTION, END_MARK, MARK_SLACK, START_FUNCTION, START_MARK
from oomlab.record.profile import AllocationSite
from oomlab.trust import open_in_dir

TOP_SITES = 5
NATIVE_FRAMES = 8  # native frames kept per site, innermost first
_OOMLAB_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))) + os.sep  # the package
_SCENARIOS_DIR = os.path.join(_OOMLAB_DIR, "scenarios") + os.sep  # in a wheel the built-in scenarios sit inside it
_LIBRARY_DIRS = tuple(
    os.path.realpath(p) + os.sep
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


@dataclass
class _Tally:
    """One site's records summed while a capture is read; the record's AllocationSite once done."""

    function: str
    file: str
    line: int
    bytes: int = 0
    allocations: int = 0
    via: list[str] = field(default_factory=list)
    native: list[str] = field(default_factory=list)

    def site(self) -> AllocationSite:
        return AllocationSite(
            self.function, self.file, self.line, self.bytes, self.allocations, tuple(self.via), tuple(self.native)
        )


@dataclass
class Capture:
    path: str
    view: str  # high-water mark | last record
    total_bytes: int  # what memray saw held at that moment
    peak_bytes: int  # memray's high-water mark over the whole capture
    sites: list[AllocationSite]
    last_snapshot_wall: float | None  # memray's last RSS snapshot (every 10 ms), seconds since the epoch
    native_traces: bool
    window: int | None = None  # the task's window in its child's capture; None: a capture of its own
    records: list[Any] = field(default_factory=list, repr=False)  # those held then, for a flame graph
    metadata: Any = field(default=None, repr=False)  # memray's header, for a flame graph
    snapshots: list[Any] = field(default_factory=list, repr=False)


# frames Python makes for a comprehension or a lambda: a site inside one is named by the function around it
_ANONYMOUS = frozenset({"<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>", "<lambda>"})


def _library(filename: str) -> bool:
    return filename.startswith("<") or os.path.realpath(filename).startswith(_LIBRARY_DIRS)


def _frame(frame: tuple[Any, ...]) -> str:
    function, filename, line = frame[:3]
    return f"{function} ({filename}:{line})" if line else f"{function} ({filename})"


def _site_of(record: Any, native_traces: bool) -> tuple[tuple[Any, ...], list[str], list[str]]:
    """The site key (function, file, line), the library frames inside it and the native frames."""
    python = record.stack_trace()
    native = [_frame(f) for f in record.native_stack_trace()[:NATIVE_FRAMES]] if native_traces else []
    if not python:
        return ("<native>", "<no Python frame>", 0), [], native
    index = next((i for i, frame in enumerate(python) if not _library(frame[1])), 0)
    _, filename, line = python[index][:3]
    return (_named(python, index), filename, line), [_frame(f) for f in python[:index]], native


def _named(python: list[tuple[Any, ...]], index: int) -> str:
    """The function a site is in: out of a comprehension's or a lambda's frame (innermost first) to
    the named function around it, whose name the user searches for; the site keeps its exact line."""
    for frame in python[index:]:
        if frame[0] not in _ANONYMOUS:
            return str(frame[0])
    return str(python[index][0])


def _is_oomlab_frame(path: str) -> bool:
    """oomlab's own code (the probe, the tracker), not a built-in scenario's task."""
    return path.startswith(_OOMLAB_DIR) and not path.startswith(_SCENARIOS_DIR)


def top_sites(records: Iterable[Any], native_traces: bool, top: int = TOP_SITES) -> tuple[int, list[AllocationSite]]:
    """Records grouped by site, largest first; a site keeps the frames of its largest record."""
    sites: dict[tuple[Any, ...], _Tally] = {}
    largest: dict[tuple[Any, ...], int] = {}
    total = 0
    for record in records:
        if record.size <= 0:
            continue
        key, via, native = _site_of(record, native_traces)
        if _is_oomlab_frame(os.path.realpath(key[1])):
            continue  # the probe's and the tracker's own records, written inside the task's span
        total += record.size
        site = sites.get(key)
        if site is None:
            site = sites[key] = _Tally(key[0], key[1], key[2])
        site.bytes += record.size
        site.allocations += record.n_allocations
        if record.size > largest.get(key, -1):
            largest[key] = record.size
            site.via, site.native = via, native
    return total, [tally.site() for tally in sorted(sites.values(), key=lambda s: s.bytes, reverse=True)[:top]]


def read_capture(path: str, killed: bool, top: int = TOP_SITES) -> Capture:
    """At the high-water mark for a task that finished; at the last record for one that was killed
    (what it held when the kernel struck, which is what the OOM killer counted)."""
    import memray

    reader = memray.FileReader(path, report_progress=False)
    try:
        metadata = reader.metadata
        records = (
            reader.get_leaked_allocation_records(merge_threads=True)
            if killed
            else reader.get_high_watermark_allocation_records(merge_threads=True)
        )
        total, sites = top_sites(records, metadata.has_native_traces, top)
        snapshots = list(reader.get_memory_snapshots())
    finally:
        reader.close()
    return Capture(
        path=path,
        view="last record" if killed else "high-water mark",
        total_bytes=total,
        peak_bytes=metadata.peak_memory,
        sites=sites,
        last_snapshot_wall=snapshots[-1].time / 1000 if snapshots else None,
        native_traces=metadata.has_native_traces,
    )


_MALLOC = 6  # memray's AllocatorType.MALLOC: a mark is a bytearray's buffer
_FREES = frozenset({1, 5, 15})  # PYMALLOC_FREE, FREE, MUNMAP: an allocation ends


@dataclass
class _Window:
    number: int
    live: dict[int, Any] = field(default_factory=dict)  # address -> record, allocated inside the window
    events: list[tuple[int, Any]] = field(default_factory=list)  # (address, record or None for its end)
    current: int = 0
    peak: int = 0
    at: int = 0  # how many events in, the peak was reached

    def allocate(self, record: Any) -> None:
        self.live[record.address] = record
        self.current += record.size
        self.events.append((record.address, record))
        if self.current > self.peak:
            self.peak, self.at = self.current, len(self.events)

    def free(self, address: int) -> None:
        record = self.live.pop(address, None)
        if record is not None:  # an allocation made before the window is not the task's
            self.current -= record.size
            self.events.append((address, None))

    def held_at_peak(self) -> list[Any]:
        held: dict[int, Any] = {}
        for address, record in self.events[: self.at]:
            if record is None:
                held.pop(address, None)
            else:
                held[address] = record
        return list(held.values())


def _mark(record: Any) -> str | None:
    """START_FUNCTION or END_FUNCTION when the record is one of the probe's marks."""
    size = record.size
    if record.allocator != _MALLOC or not (
        START_MARK <= size < START_MARK + MARK_SLACK or END_MARK <= size < END_MARK + MARK_SLACK
    ):
        return None
    frames = record.stack_trace(max_stacks=1)
    name = frames[0][0] if frames else None
    return name if name in (START_FUNCTION, END_FUNCTION) else None


def replay(records: Iterable[Any]) -> dict[int, tuple[bool, int, list[Any]]]:
    """Each window in a capture's records (in the order memray wrote them): number -> (closed, the
    high-water mark of the window's own allocations, the records held at it). A window the capture
    ends inside (its task was killed, or still runs) gives what was held at the last record."""
    windows: dict[int, tuple[bool, int, list[Any]]] = {}
    number = -1
    window: _Window | None = None
    for record in records:
        mark = _mark(record) if record.allocator == _MALLOC else None
        if mark == START_FUNCTION:
            number += 1
            window = _Window(number)
            continue
        if mark == END_FUNCTION and window is not None:
            windows[window.number] = (True, window.peak, window.held_at_peak())
            window = None
            continue
        if window is None:
            continue
        if record.allocator in _FREES:
            window.free(record.address)
        else:
            window.allocate(record)
    if window is not None:
        windows[window.number] = (False, window.peak, list(window.live.values()))
    return windows


def read_windows(path: str, top: int = TOP_SITES) -> dict[int, Capture]:
    """Every chosen task's window in a pool child's capture, read in one pass."""
    import memray

    reader = memray.FileReader(path, report_progress=False)
    try:
        metadata = reader.metadata
        native = metadata.has_native_traces
        windows = replay(reader.get_allocation_records())
        snapshots = list(reader.get_memory_snapshots())
    finally:
        reader.close()
    last = snapshots[-1].time / 1000 if snapshots else None
    read = {}
    for number, (closed, peak, held) in windows.items():
        total, sites = top_sites(held, native, top)
        read[number] = Capture(
            path=path,
            view="high-water mark" if closed else "last record",
            total_bytes=total,
            peak_bytes=peak,
            sites=sites,
            last_snapshot_wall=last,
            native_traces=native,
            window=number,
            records=held,
            metadata=metadata,
            snapshots=snapshots,
        )
    return read


def render_flamegraph(capture: Capture, html: str) -> None:
    """memray's own flame graph of what the task held at its peak (or at the last record), drawn by
    memray's reporter from the window's records, with its assets inlined (no network needed)."""
    from memray.reporters.flamegraph import FlameGraphReporter

    reporter = FlameGraphReporter.from_snapshot(
        capture.records, memory_records=capture.snapshots, native_traces=capture.native_traces
    )
    with open_in_dir(html, "w") as handle:  # in the run directory: never through a planted link
        reporter.render(
            outfile=handle,
            metadata=capture.metadata,
            show_memory_leaks=capture.view == "last record",
            merge_threads=True,
            inverted=False,
            no_web=True,
        )
