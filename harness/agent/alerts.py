"""--alert-webhook URL: one JSON per kill, POSTed from a thread of its own and retried with backoff,
so a receiver that is slow or down never delays detection or repair. A bounded queue: when the
receiver is gone for long, the oldest alerts are dropped, and the agent says so.

A URL's user:password goes as an HTTP Basic Authorization header (urllib refuses a URL that holds
one); whatever goes wrong in sending is said in one sentence with the password masked, and the next
alert is tried: the thread never dies of an alert."""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

from oomlab.agent.kills import Kill
from oomlab.record.redact import safe_url, without_password

RETRIES = 5
_BACKOFF_S = (0.2, 0.5, 1, 2, 5)
_CAPACITY = 1000


class Alerts:
    def __init__(self, url: str, report: Callable[[str], None]):
        self.given = url  # kept only to mask its password wherever an error quotes a piece of it
        self.url, self.authorization = credentials(url)
        self.shown = safe_url(self.url) + (
            " (with credentials)" if self.authorization else ""
        )  # a bare user may be a token
        self.report = report
        self.error = ""  # why the last try failed, masked
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
            try:
                self._deliver(body)
            except Exception as exc:  # never the thread's end: the next alert is tried
                self.failed += 1
                self.report(f"the alert webhook {self.shown}: an alert was dropped ({self._masked(exc)})")
            finally:
                self.pending.task_done()

    def _deliver(self, body: dict) -> None:
        for attempt in range(RETRIES):
            if self._send(body):
                self.sent += 1
                return
            time.sleep(_BACKOFF_S[attempt])
        self.failed += 1
        self.report(
            f"the alert webhook {self.shown} did not take an alert after {RETRIES} tries ({self.error}); dropped"
        )

    def flush(self, timeout: float) -> None:
        """Wait (at most `timeout`) for the alerts queued so far: the agent is about to exit."""
        deadline = time.monotonic() + timeout
        while self.pending.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def _send(self, body: dict) -> bool:
        headers = {"Content-Type": "application/json"}
        if self.authorization is not None:
            headers["Authorization"] = self.authorization
        try:
            request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=5) as response:
                self.error = f"HTTP {response.status}"
                return 200 <= response.status < 300
        except Exception as exc:  # an unreachable host, an HTTP error, a URL urllib refuses (http.client.InvalidURL)
            self.error = self._masked(exc)
            return False

    def _masked(self, exc: BaseException) -> str:
        return without_password(f"{type(exc).__name__}: {exc}", self.given)


def credentials(url: str) -> tuple[str, str | None]:
    """(the URL without its user:password@, the Basic Authorization header they make, or None)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url, None  # sending says why, masked
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), "Basic " + base64.b64encode(pair.encode()).decode()
