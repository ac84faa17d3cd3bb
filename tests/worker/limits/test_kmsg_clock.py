"""The kernel log's clock is calibrated against CLOCK_MONOTONIC, on whatever kernel runs the tests."""

import os
import time

from oomlab.observe.detectors.kmsg import KmsgReader

from tests.conftest import TIME_SCALE


def _stamp_of(reader: KmsgReader, marker: str) -> float:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            record = os.read(reader.fileno(), 16384).decode()
        except BlockingIOError:
            time.sleep(0.001)
            continue
        if marker in record:
            return int(record.split(",")[2]) / 1e6
    raise AssertionError(f"{marker!r} never came back from /dev/kmsg")


def test_a_kernel_log_stamp_maps_onto_the_monotonic_clock():
    reader = KmsgReader.open("/oomlab/none")
    if not os.access("/dev/kmsg", os.R_OK | os.W_OK):  # an unprivileged user: no kernel log, no calibration
        assert reader is None or reader.clock_offset is None
        return
    try:
        assert reader.clock_offset is not None
        marker = f"oomlab test {os.getpid()} {time.monotonic_ns()}"
        with open("/dev/kmsg", "w") as log:
            before = time.monotonic()
            log.write(marker + "\n")
            log.flush()
            after = time.monotonic()
        stamp = _stamp_of(reader, marker)
        time.sleep(0.2)
        reader.calibrate()  # the second point: the marker's stamp is mapped between the two
        assert len(reader.clock.points) == 2
        mapped = reader.clock.to_mono(stamp)
        slack = 0.001 * TIME_SCALE  # half a calibration write's own window, at most, on a loaded machine
        assert before - slack <= mapped <= after + slack, (before, mapped, after, reader.clock.points)
    finally:
        reader.close()
