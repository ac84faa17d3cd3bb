"""python -m vmlane rootfs | image | run -- CMD... | tests [PYTEST ARGS]"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time

from vmlane.boot import run_job
from vmlane.errors import LaneError
from vmlane.image import PROJECT, base_rootfs, build_image, find_kernel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmlane", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("rootfs", help="make the Debian root filesystem if absent and print its path (the Docker base too)")
    sub.add_parser("image", help="build the VM image if absent and print its path")
    run = sub.add_parser("run", help="run a shell command as root in the VM (cwd: the project)")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    tests = sub.add_parser("tests", help="the limits backend's tests on cgroup v2, as root and as a delegated user")
    tests.add_argument("pytest_args", nargs=argparse.REMAINDER)
    for each in (run, tests):
        each.add_argument("--timeout", type=float, default=1800, help="seconds before the VM is stopped")
        each.add_argument("--out", default=None, help="where the job's output is kept (default: results/vm-TIME)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)  # unwinds like Ctrl-C: qemu killed, scratch files removed
    try:
        if args.command == "rootfs":
            print(base_rootfs())
            return 0
        image = build_image()
        if args.command == "image":
            print(image)
            return 0
        if args.command == "run":
            script = shlex.join(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd)
        else:
            script = shlex.join(["sh", "/src/vmlane/guest/backend_tests.sh", *args.pytest_args])
        out_dir = args.out or os.path.join(PROJECT, "results", f"vm-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"vmlane: booting {find_kernel().release} with {os.path.basename(image)}", flush=True)
        result = run_job(image, script, out_dir, timeout=args.timeout)
        print(
            f"vmlane: exit code {result.exit_code}, booted in {result.boot_seconds:.1f} s, "
            f"{result.total_seconds:.1f} s in all; output in {out_dir}",
            flush=True,
        )
        return result.exit_code
    except LaneError as exc:
        print(f"vmlane: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vmlane: interrupted; the VM was stopped", file=sys.stderr)
        return 130


def _interrupted(_signum, _frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
