"""Expected queue wait from a measured service rate: the Erlang C model of c servers (a replica's
pool slots) fed at random (Poisson) arrivals. A model, not a measurement: the plan shows it beside
the queue wait each load run measured, and the proving run measures it at the chosen setting."""

from __future__ import annotations

import math

NEVER = math.inf  # the queue grows without bound: arrivals at or above what the servers can do


def erlang_c(servers: int, offered: float) -> float:
    """The chance that an arrival waits, with `offered` = arrival rate x mean service time (erlangs)."""
    if servers < 1 or offered >= servers:
        return 1.0
    term, total = 1.0, 1.0  # the sum of offered^k / k! for k < servers, built term by term
    for k in range(1, servers):
        term *= offered / k
        total += term
    last = term * offered / servers * servers / (servers - offered)
    return last / (total + last)


def queue_wait_quantile(servers: int, service_rate_total: float, arrival_rate: float, q: float = 0.95) -> float:
    """The q-quantile of the wait before a task starts, for `servers` slots that together finish
    `service_rate_total` tasks per second: P(W > t) = C · exp(-(cμ - λ) t)."""
    if arrival_rate <= 0:
        return 0.0
    if service_rate_total <= arrival_rate:
        return NEVER
    mean_service = servers / service_rate_total
    waits = erlang_c(servers, arrival_rate * mean_service)
    if waits <= 1 - q:
        return 0.0
    return math.log(waits / (1 - q)) / (service_rate_total - arrival_rate)
