"""The server under more than it can do, as a client sees it: its own process, real HTTP.

Deadlines (504), shedding (503 at once), fairness under a flood of the heaviest requests, and a
graceful stop on SIGTERM. The tiny model is slow to search at beam 32 (untrained, it writes to
the longest output), which makes its heavy requests heavy enough here.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from pipeline.machine import matmul_rate, processor
from pipeline.serving.load import flood_level, heavy_request, markdown, request, start_server, stop_server

NAME = "gru_bahdanau"  # conftest's exported_tiny, served here under the name it was exported as
SOURCES = ["Ein Hund läuft über eine Wiese.", "Zwei Kinder spielen im Sand."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    """The machine a timing held or failed on: its processor, cores and make bench ceiling."""
    return f"on {processor()['cpu']}, {os.cpu_count()} cores, make bench ceiling {matmul_rate():.1f} GFLOP/s"


@pytest.fixture(scope="module")
def models(exported_tiny) -> Path:
    return exported_tiny.parent.parent


@pytest.fixture(scope="module")
def short(models):
    """A server whose requests have a 2 s deadline."""
    port = free_port()
    server = start_server(models, port, "--models", NAME, "--deadline-ms", "2000")
    yield port
    stop_server(server)


def post(port: int, body: dict, timeout: float = 120.0) -> tuple[int, dict, float]:
    began = time.monotonic()
    status, answer = request(port, f"/v1/models/{NAME}:predict", body, timeout)
    return status, answer, time.monotonic() - began


def test_a_request_still_queued_at_its_deadline_gets_504_its_work_stops_and_the_server_goes_on(short):
    # Two heavy requests at once on a fresh server (nothing measured yet, so nothing is shed):
    # dozens of calls each, far beyond 2 s.
    answers: list[tuple] = []
    threads = [threading.Thread(target=lambda: answers.append(post(short, heavy_request(SOURCES))))
               for _ in range(2)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for status, body, seconds in answers:
        assert status == 504 and set(body) == {"error"}, body
        assert "Deadline Exceeded" in body["error"] and 2.0 <= seconds < 4.0, (body, seconds)
    # No more calls for them: at most the one running at the deadline ends.
    time.sleep(1.5)
    calls = request(short, "/page/stats")[1]
    time.sleep(1.5)
    assert request(short, "/page/stats")[1] == calls and calls["queued"] == 0
    assert post(short, {"instances": SOURCES[:1]})[0] == 200


def test_a_request_the_queue_cannot_finish_within_its_deadline_gets_503_at_once_and_the_queue_goes_on(short):
    light = []
    for _ in range(3):  # once a heavy call has been timed (the test above, or this loop), heavy is shed
        waiting = threading.Thread(target=lambda: light.append(post(short, {"instances": SOURCES})))
        waiting.start()
        status, body, seconds = post(short, heavy_request(SOURCES))
        waiting.join()
        if status == 503:
            break
    assert status == 503 and seconds < 0.5, (status, body, seconds)
    assert "beyond its 2 s deadline" in body["error"] and "overloaded" in body["error"]
    assert [answer[0] for answer in light] == [200] * len(light)  # what was queued is answered


def test_under_a_flood_of_the_heaviest_requests_one_sentence_requests_are_answered_within_two_seconds(models):
    # servebench's flood level, short: 16 clients send 64 sentences of 600 characters at beam 32
    # back to back (the deadline lets a few in, the rest get 503) while one client sends one
    # sentence at a time. The heavy clients give up when the flood ends.
    port = free_port()
    server = start_server(models, port, "--models", NAME, "--deadline-ms", "120000")
    try:
        flood = flood_level(port, NAME, SOURCES, seconds=4.0, patience=0.0)
    finally:
        stop_server(server)
    assert flood["light_codes"] == {"200": flood["requests"]}, flood
    assert set(flood["flood_codes"]) - {"503"}, f"no heavy request was let in: {flood} {machine()}"
    assert flood["requests"] >= 2 and flood["p99_ms"] < 2000, f"{flood} {machine()}"


def test_sigterm_answers_every_request_accepted_refuses_new_ones_and_exits_0(models):
    port = free_port()
    server = start_server(models, port, "--models", NAME)
    answers: dict[int, int] = {}
    body = heavy_request(SOURCES)
    body["inputs"]["sources"] = body["inputs"]["sources"][:2]  # two calls of the longest at beam 32

    def client(i: int) -> None:
        try:
            answers[i] = post(port, body)[0]
        except OSError as error:
            answers[i] = f"{type(error).__name__}: {error}"

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while request(port, "/page/stats")[1]["queued"] < 7:  # all four in, the first call running
            assert time.monotonic() < deadline and not answers, answers
            time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(ConnectionRefusedError):
            request(port, "/page/stats", timeout=5)
        for thread in threads:
            thread.join()
        code = server.wait(60)
    finally:
        printed = stop_server(server)
    assert answers == dict.fromkeys(range(4), 200), printed[-2000:]
    assert code == 0, printed[-2000:]


def test_servebench_writes_the_flood_row_beside_the_levels():
    level = {"clients": 1, "requests": 300, "errors": 0, "requests_per_second": 15.0, "p50_ms": 30.0,
             "p99_ms": 90.0, "mean_batch": 1.0, "peak_memory_mib": 800.0}  # fmt: skip
    flood = {"clients": 16, "requests": 9, "p50_ms": 435.0, "p99_ms": 565.3, "alone_p50_ms": 31.9,
             "alone_p99_ms": 127.3, "light_codes": {"200": 9}, "flood_codes": {"503": 100, "no answer": 4},
             "peak_memory_mib": 900.0}  # fmt: skip
    result = {"model": NAME, "version": 1, "pair": "de-en", "seconds_per_level": 4.0, "max_batch_size": 64,
              "batch_wait_ms": 5.0, "ceiling_gflops": 100.0, "cpus": 2}  # fmt: skip
    result.update(levels=[level], flood=flood)
    text = markdown(result)
    assert "| 1 | 300 | 0 | 15.0 | 30.0 | 90.0 | 1.0 | 800.0 |" in text
    assert (
        "while 16 others send the heaviest request the export accepts (64 sentences of 600 characters" in text
    )
    assert "| 16 | 9 | 31.9 | 127.3 | 435.0 | 565.3 | 9 x 200 | 100 x 503, 4 x no answer | 900.0 |" in text
    assert "Flood" not in markdown({**result, "flood": None})
