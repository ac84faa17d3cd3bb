"""The agent's /metrics scraped by a real Prometheus (Debian's package), read back through
Prometheus's HTTP query API (a port another user took: tests/security/test_agent.py)."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from tests.agent.conftest import wait_state

pytestmark = [pytest.mark.integration, pytest.mark.services]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)["data"]["result"]


def test_prometheus_scrapes_the_kill_count(agent_run, tmp_path):
    metrics_port, prom_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: agent, static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]}}]\n"
    )
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with agent_run() as run:
            run.start("--memory", "256MiB", "--metrics", str(metrics_port))
            run.wait_ready()
            said = f"in a memory group limited to 256.0 MiB; metrics on http://127.0.0.1:{metrics_port}/metrics"
            assert "oomlab agent: watching the worker (pid " in run.text() and said in run.text(), run.text()
            mod = run.app()
            wait_state(mod.hog.delay(600))
            deadline, found = time.monotonic() + 60, []
            while time.monotonic() < deadline:
                try:
                    found = _query(prom_port, 'oomlab_oom_kills_total{task="user_app.hog"}')
                except OSError:
                    found = []
                if found:
                    break
                time.sleep(0.5)
            assert found, "Prometheus never scraped a kill"
            assert found[0]["metric"]["role"] == "pool child" and float(found[0]["value"][1]) == 1
            limit = _query(prom_port, "oomlab_worker_memory_limit_bytes")
            assert float(limit[0]["value"][1]) == 256 * 2**20
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
                text = response.read().decode()
            assert 'oomlab_task_peak_bytes_count{task="user_app.hog"} 1.0' in text
            labels = [line[line.index("{") : line.index("}")] for line in text.splitlines() if "{" in line]
            assert labels and not any("600" in label for label in labels)  # no task argument in any label
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)


def test_a_label_with_a_lone_surrogate_still_scrapes():
    """A message's routing key "\\udcff" (JSON carries lone surrogates) as the queue label made every
    scrape fail with UnicodeEncodeError; label values are made printable in one place."""
    from oomlab.agent.kills import Kill
    from oomlab.agent.metrics import AgentMetrics
    from prometheus_client.parser import text_string_to_metric_families

    port = _free_port()
    metrics = AgentMetrics.serve("127.0.0.1", port)
    metrics.on_kill(Kill(pid=1, role="pool child", cause="oom", seen_mono=0.0, task_name="t\udcff", queue="\udcff"))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == "oomlab_oom_kills_total"]
    assert [(s.labels["task"], s.labels["queue"]) for s in samples] == [("t\\udcff", "\\udcff")]


def _closed_by_server(connections: list[socket.socket]) -> list[bool]:
    """Which of the connections the server closed (readable at once, and at their end), read together:
    one by one, the open ones would wait out the server's own read timeout."""
    readable, _, _ = select.select(connections, [], [], 0.5)
    return [c in readable and c.recv(1, socket.MSG_DONTWAIT) == b"" for c in connections]


def test_half_sent_requests_in_every_place_do_not_keep_a_scraper_out():
    """A local user holding every connection the server allows with half a request line kept
    Prometheus out for 10 s at a time; now a new connection takes the oldest such place."""
    from oomlab.agent.metrics import MAX_CONNECTIONS, AgentMetrics

    port = _free_port()
    AgentMetrics.serve("127.0.0.1", port)
    held = []
    try:
        for _ in range(3 * MAX_CONNECTIONS):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"GET /metr")
            held.append(connection)
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                assert response.status == 200 and b"oomlab_oom_kills_total" in response.read()
        closed = _closed_by_server(held)
        assert sum(closed) >= len(held) - MAX_CONNECTIONS, closed  # the oldest went, the places stayed bounded
        assert not closed[-1]  # the newest kept its place: nothing is closed while a place is free
    finally:
        for connection in held:
            connection.close()


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def test_requests_with_huge_headers_in_every_place_cost_the_agent_little_memory():
    """Python's parser takes 100 header lines of 64 KiB: 16 connections each holding 99 of them kept
    ~100 MiB in the agent (a local user's memory, charged to the worker's group). The server here
    runs in this process, so its RSS is this process's."""
    from oomlab.agent.metrics import MAX_CONNECTIONS, AgentMetrics

    port = _free_port()
    AgentMetrics.serve("127.0.0.1", port)
    header = b"X-Pad: " + b"a" * (60 << 10) + b"\r\n"
    before, held = _rss_bytes(), []
    try:
        for _ in range(MAX_CONNECTIONS):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.setblocking(False)
            pending = b"GET /metrics HTTP/1.1\r\n" + header * 99  # no blank line: the request is never whole
            try:
                while pending:
                    pending = pending[connection.send(pending) :]
            except (BlockingIOError, OSError):  # the server stopped reading (or answered and closed)
                pass
            held.append(connection)
        time.sleep(1.0)  # the server's threads read what they will
        grown = _rss_bytes() - before
        assert grown < 16 << 20, f"{grown / 2**20:.1f} MiB held for {len(held)} connections"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.status == 200
    finally:
        for connection in held:
            connection.close()
