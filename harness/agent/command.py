"""`oomlab agent [options] -- celery -A APP worker ...`: the worker as the agent's child, watched,
its kills repaired, counted, exposed and announced. The agent's exit code is the worker's."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from oomlab.agent import worker_process
from oomlab.agent.repair import Repairer
from oomlab.agent.watcher import SWITCH_INTERVAL_S, Watcher
from oomlab.config.events_url import EventsUrl
from oomlab.errors import BadInput, NoPermission
from oomlab.probe import agent_events
from oomlab.record.printable import printable
from oomlab.worker.leftovers import Lease
from oomlab.worker.limits import CgroupBackend, open_cgroup_backend
from oomlab.worker.limits.attached import open_attached_group
from oomlab.worker.limits.discovery import own_memory_group
from oomlab.worker.temp_dir import hand_over, hand_over_in_child, leased_temp_dir, release_temp_dir


@dataclass
class AgentOptions:
    command: list[str]
    memory_bytes: int | None = None
    metrics: tuple[str, int] | None = None
    max_redeliveries: int = 3
    alert_webhook: str | None = None
    events: EventsUrl | None = None  # --events: publish the worker's events on a Redis stream
    replica: str | None = None  # the name the events carry (default: the host's name)


def say(sentence: str) -> None:
    """One line on stderr; task names and errors in it come from the broker: escaped (printable)."""
    print(f"oomlab agent: {printable(sentence)}", file=sys.stderr, flush=True)


def check_command(command: list[str]) -> None:
    """A Celery worker's command line: `celery ... worker ...` or `python -m celery ... worker ...`."""
    names = [os.path.basename(part) for part in command]
    celery_at = next((i for i, name in enumerate(names) if name == "celery"), None)
    if not command:
        raise BadInput("no worker command: give it after `--`, e.g. oomlab agent -- celery -A app worker")
    if celery_at is None or "worker" not in command[celery_at + 1 :]:
        shown = " ".join(command[celery_at or 0 :])  # from `celery`: its sub-command is what is wrong
        shown = shown if len(shown) <= 80 else f"{shown[:77]}..."
        raise BadInput(
            f"`{shown}` is not a Celery worker command (expected `celery ... worker ...`); nothing was started"
        )
    worker_args = command[command.index("worker", celery_at + 1) + 1 :]
    if "--detach" in worker_args or "-D" in worker_args:  # the worker would fork away: exit 0, nothing watched
        raise BadInput(
            "the worker cannot --detach (-D) under the agent, which must stay its parent to watch it: "
            "drop the option and run the agent itself as the service; nothing was started"
        )


def warn_command_secrets(command: list[str]) -> None:
    """The worker's own command line is the user's, run unchanged; a URL in it with a password can be
    read by every local user (ps) while the worker runs: said once, never shown."""
    from oomlab.config.argv_secret import argv_secret, shown_url

    for argument in command:
        url = argument.split("=", 1)[1] if argument.startswith("--") and "=" in argument else argument
        if "://" in url and (secret := argv_secret(url)):
            say(
                f"the worker's command line holds a URL with {secret} ({shown_url(url)}): every local user can "
                f"read it (ps) while the worker runs; set it in the app's configuration or the environment "
                f"(CELERY_BROKER_URL, CELERY_RESULT_BACKEND) instead"
            )


def check_webhook(url: str | None) -> None:
    """An http(s) URL with a host, checked at start: a typo would otherwise show at the first kill only."""
    from urllib.parse import urlsplit

    from oomlab.record.redact import safe_url

    try:
        parts = urlsplit(url) if url is not None else None
        fine = parts is None or (parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0)
    except ValueError:  # a port that is not a number, a bracket left open
        fine = False
    if not fine:
        raise BadInput(
            f"the alert webhook {safe_url(str(url))!r} is not an http:// or https:// URL with a host; nothing was started"
        )


def worker_queue(command: list[str]) -> str | None:
    """The queue named with -Q/--queues when there is exactly one (the metrics' queue label)."""
    for i, part in enumerate(command):
        value = None
        if part in ("-Q", "--queues") and i + 1 < len(command):
            value = command[i + 1]
        elif part.startswith("--queues="):
            value = part.split("=", 1)[1]
        elif part.startswith("-Q") and len(part) > 2:
            value = part[2:]
        if value is not None:
            return value if "," not in value else None
    return None


def own_group() -> CgroupBackend | None:
    """The memory cgroup the agent (and so the worker) runs in, read-only; None, said, when unreadable."""
    try:
        directory, _version, path = own_memory_group()
        return open_attached_group(os.getpid(), directory, path)
    except NoPermission as exc:
        say(f"{exc.message}; the worker runs unwatched by the cgroup (pool exits are still seen)")
        return None


def made_group(memory_bytes: int, lease: Lease | None) -> CgroupBackend:
    """The worker's memory group, named in `lease` (the worker's, with its TMPDIR) before it exists:
    an agent SIGKILLed leaves it to the sweep, which removes it once no process is in it."""
    group = open_cgroup_backend(f"agent-{uuid.uuid4().hex[:12]}")
    if lease is not None:
        lease.set_cgroup(group.path)
    try:
        group.create(memory_bytes, "process")
        group.prepare_leaves()
    except OSError as exc:
        group.remove()
        raise NoPermission(f"cannot create a memory cgroup at {group.path}: {exc.strerror or exc}") from None
    return group


def serve_metrics(address: tuple[str, int] | None):
    """/metrics at `address`, or None, said on stderr, when it cannot be bound (a port another local
    user took must not keep the production worker from starting)."""
    if address is None:
        return None
    from oomlab.agent.metrics import AgentMetrics, MetricsUnavailable

    try:
        return AgentMetrics.serve(*address)
    except MetricsUnavailable as exc:
        say(f"{exc}; the worker starts without metrics")
        return None


def started_line(pid: int, limit: int | None, metrics: tuple[str, int] | None) -> str:
    """What the agent watches, said once it does: an operator's first sign it is there."""
    from oomlab.config.sizes import format_size

    group = f"a memory group limited to {format_size(limit)}" if limit is not None else "a memory group with no limit"
    served = f"; metrics on http://{metrics[0]}:{metrics[1]}/metrics" if metrics is not None else ""
    return f"watching the worker (pid {pid}) in {group}{served}"


def exit_summary(code: int, seconds: float, tally: Counter[str], main_killed: bool) -> str:
    """The agent's last line: how the worker ended and what the agent saw and did while it ran."""
    from oomlab.config.durations import format_seconds

    kills = tally["kills"] + main_killed
    seen = f"{kills} kill(s) seen" if kills else "no kill seen"
    if tally["marked_failure"] or tally["dead_lettered"]:
        seen += f", {tally['marked_failure']} task(s) marked FAILURE, {tally['dead_lettered']} dead-lettered"
    return f"the worker exited with {code} after {format_seconds(seconds)}; {seen}"


def report_main_kill(watcher: Watcher, repairer: Repairer, code: int) -> bool:
    """The worker's main process killed (the OOM killer at start, under too small a limit): one line,
    and the metrics and alerts; the agent's exit code stays the worker's. True when it was."""
    try:
        kill = watcher.main_killed(code)
    except OSError:
        return False
    if kill is None:
        return False
    say(f"{kill.describe()}; the worker exits with {code}")
    for listener in repairer.listeners:
        try:
            listener(kill)
        except Exception as exc:
            say(f"a kill's listener failed: {exc!r}")
    return True


def start_events(url: EventsUrl, replica: str | None):
    from oomlab.agent.events import EventSink

    sink = EventSink(url, replica, say).start()
    say(f"publishing this worker's events to {url.shown} as replica {sink.replica}")
    return sink


def group_memory(group: CgroupBackend | None):
    """The worker's memory group's (usage, peak) now, for the events; None without a group."""
    if group is None:
        return None
    return lambda: (group.usage_bytes(), group.peak_bytes())


def both(first, second):
    def call(kill) -> None:
        first(kill)
        second(kill)

    return call


def hello_on_ready(events, watcher: Watcher):
    """The replica's hello once the worker is ready (the probe's app line): it can take tasks now."""

    def on_line(line) -> None:
        if line["ev"] == agent_events.APP:
            events.worker_ready(
                line.get("hostname"), watcher.main_pid, watcher.memory()[1], line.get("concurrency"), line.get("queues")
            )

    return on_line


def pin_on_ready():
    """Once the worker is ready (the agent's loop has run through its code by then), that code is
    locked in memory: the agent shares the worker's group, whose limit would evict it (agent.resident)."""
    done = False

    def on_line(line) -> None:
        nonlocal done
        if done or line["ev"] != agent_events.APP:
            return
        done = True
        from oomlab.agent.resident import pin_resident_code

        pinned = pin_resident_code()
        if pinned.error is not None:
            say(
                f"cannot keep the agent's code in memory ({pinned.error}): at the group's limit a kill can be seen late"
            )

    return on_line


def run(options: AgentOptions) -> int:
    check_command(options.command)
    warn_command_secrets(options.command)
    check_webhook(options.alert_webhook)
    worker_process.check_workdir(options.command)
    metrics = serve_metrics(options.metrics)
    # billiard's pymp-* dirs in a directory of the agent's, removed when the worker exits (even SIGKILLed);
    # leased with --memory's cgroup, the worker's from its fork on, swept after it should the agent be killed
    tmp, tmp_lease = leased_temp_dir()
    try:
        made = made_group(options.memory_bytes, tmp_lease) if options.memory_bytes else None
    except NoPermission:
        release_temp_dir(tmp, tmp_lease)
        raise
    group = made or own_group()
    ours, theirs = worker_process.probe_socket()
    extra_env = made.leaf_env() if made is not None else {}
    extra_env["TMPDIR"] = tmp
    try:
        process = worker_process.start(
            options.command,
            theirs,
            extra_env,
            made.join_file if made else None,
            lambda: hand_over_in_child(tmp_lease),
        )
    except OSError as exc:
        if made is not None:
            made.remove()
        release_temp_dir(tmp, tmp_lease)
        raise BadInput(f"cannot start `{options.command[0]}`: {exc.strerror or exc}") from None
    started = time.monotonic()
    theirs.close()
    hand_over(tmp_lease, process.pid)
    worker_process.forward_signals(process.pid)
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # the agent runs no user code: its watcher wakes first
    repairer = Repairer(options.max_redeliveries, say)
    watcher = None
    alerts = None
    events = None
    try:
        on_kill = repairer.kill
        if options.events is not None:
            events = start_events(options.events, options.replica)
            on_kill = both(events.kill, repairer.kill)
        watcher = Watcher(ours, process.pid, group, on_kill, repairer.event)
        watcher.queue = worker_queue(options.command)
        watcher.inbox.report = say
        if events is not None:
            events.memory = group_memory(group)
            watcher.line_listeners.append(hello_on_ready(events, watcher))
            watcher.line_listeners.append(events.probe_line)
        if made is None and watcher.memory()[1] is not None:  # the agent shares the worker's limited group
            watcher.line_listeners.append(pin_on_ready())
        watcher.report_to(say)  # what it cannot do, said once each: now, and as it comes
        if metrics is not None:
            metrics.attach(watcher, repairer)
        if options.alert_webhook:
            from oomlab.agent.alerts import Alerts

            alerts = Alerts.start(options.alert_webhook, say)
            repairer.listeners.append(alerts.post)
        repairer.start()
        watcher.start()
        say(started_line(process.pid, watcher.memory()[1], options.metrics if metrics is not None else None))
    except Exception as exc:  # the agent's watching failed: the worker goes on regardless
        say(f"cannot watch the worker ({exc!r}); it runs on unwatched")
    code = worker_process.wait(process.pid)
    if watcher is not None and watcher.is_alive():
        watcher.stop()
    if repairer.is_alive():
        repairer.stop()
    main_killed = watcher is not None and report_main_kill(watcher, repairer, code)
    say(exit_summary(code, time.monotonic() - started, repairer.tally, main_killed))
    if alerts is not None:
        alerts.flush(timeout=3)
    if events is not None:
        events.worker_exit(code)
        events.close(timeout=3)
    if made is not None:
        made.remove()
    release_temp_dir(tmp, tmp_lease)  # the lease last: a kill before leaves the sweep all it names
    return code
