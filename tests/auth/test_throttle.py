"""Repeated failed logins from one client are slowed down; the right password still gets in."""

from __future__ import annotations

import time

import httpx

from tests.auth.conftest import Harbor, call, http_client
from tests.servers import RunningServer

ATTEMPTS = 8


def timed(c: httpx.Client, auth: tuple[str, str]) -> tuple[int, float]:
    start = time.perf_counter()
    status = c.get("/v2/", auth=auth).status_code
    return status, time.perf_counter() - start


def test_failed_logins_slow_down(auth_server: RunningServer, harbor: Harbor) -> None:
    """A behaviour check of the throttle, not a performance target: five failures are free, then each
    attempt waits longer (0.25 s, 0.5 s, 1 s...). The baseline is the quickest of the first attempts, so
    that a slow password hash on a busy machine does not count as throttling.

    One connection (one server worker) throughout: the throttle lives in each worker's memory."""
    user = harbor.user("throt")
    with http_client(auth_server) as c:
        durations = []
        for i in range(ATTEMPTS):
            status, took = timed(c, (user.name, f"Wrong{i}{user.secret}"))
            assert status == 401
            durations.append(took)
        baseline = min(durations[:3])
        assert durations[-1] >= baseline + 0.2, [round(d, 3) for d in durations]

        status, _ = timed(c, (user.name, user.secret))
        assert status == 200, "the right password works after a run of failures"
    r = call(auth_server, "GET", "/service/token", auth=(user.name, user.secret),
                  params={"service": "portside"})
    assert r.status_code == 200
    harbor.secrets.add(r.json()["token"])
