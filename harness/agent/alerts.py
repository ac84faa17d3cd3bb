"""--alert-webhook URL: one JSON per kill, POSTed from a thread of its own and retried with backoff,
so a receiver that is slow or down never delays detection or repair. A bounded queue: when the
receiver is gone for long, the oldest alerts are dropped, and the agent says so."""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
from collections.abc import Callable

from oomlab.agent.kills import Kill

RETRIES = 5
_BACKOFF_S = (0.2, 0.5, 1, 2, 5)
_CAPACITY = 1000


class Alerts:
    def __init__(self, url: str, report: Callable[[str], None]):
        self.url = url
        self.report = report
        self.pending: queue.Queue[dict] = queue.Queue(_CAPACITY)
        self.sent = 0
        self.failed = 0

    @classmethod
    def start(cls, url: str, report: Callable[[str], None]) -> Alerts:
        alerts = cls(url, report)
        threading.Thread(target=alerts._run, name="oomlab-agent-alerts", daemon=True).start()
        return alerts

    def post(self, kill: Kill) -> None:
        # seen_monotonic: when the agent saw the kill, on CLOCK_MONOTONIC, which a host shares with its
        # containers (no time namespace): where the agent has no kernel log, the host can time it
        body = {"event": "oom_kill" if kill.cause == "oom" else "sigkill", **kill.as_json()}
        body["seen_monotonic"] = kill.seen_mono
        try:
            self.pending.put_nowait(body)
        except queue.Full:
            self.report("the alert webhook is behind by 1000 alerts: this one is dropped")

    def _run(self) -> None:
        while True:
            body = self.pending.get()
            for attempt in range(RETRIES):
                if self._send(body):
                    self.sent += 1
                    break
                time.sleep(_BACKOFF_S[attempt])
            else:
                self.failed += 1
                self.report(f"the alert webhook did not take an alert after {RETRIES} tries; dropped")
            self.pending.task_done()

    def flush(self, timeout: float) -> None:
        """Wait (at most `timeout`) for the alerts queued so far: the agent is about to exit."""
        deadline = time.monotonic() + timeout
        while self.pending.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def _send(self, body: dict) -> bool:
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return 200 <= response.status < 300
        except (OSError, ValueError):
            return False
