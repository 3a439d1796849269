"""The server under load: N concurrent clients against localhost for a fixed time, at several N.

Each client sends one test sentence per request (row form, ``serving_default``: beam 5 and the
tuned length penalty) and waits for the answer before sending the next, for ``seconds``. The
server is started as its own process, as ``make serve`` starts it, so that its peak memory
(``VmHWM``) is its own. Clients and server share the machine's cores, as they would on one host.

The flood level: one client sends one-sentence requests while ``FLOOD_CLIENTS`` others send the
heaviest requests the export accepts (``HEAVY_SENTENCES`` sentences of ``HEAVY_CHARACTERS``
characters at the largest beam); its latency is set beside its latency alone, with the status
codes the flood got.

``write_exchange`` is the README's serving example, run: its curl requests sent to a served export
(``make best`` sends them to the best model) and written down with the server's answers.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline import corpus, layout
from pipeline.constants import DEFAULT_LENGTH_PENALTY, IDS_SUFFIX
from pipeline.decoding.export import MAX_BEAM_SIZE
from pipeline.errors import UserError
from pipeline.files import saved_model_dir, write_json, write_text
from pipeline.machine import matmul_rate
from pipeline.tokenizer import load_tokenizer

FLOOD_CLIENTS = 16
BACKOFF_SECONDS = 0.5  # a flood client told 503 (try again later) waits this long before it does
HEAVY_SENTENCES = 64
HEAVY_CHARACTERS = 600


def request(port: int, path: str, body: dict | None = None, timeout: float = 120.0) -> tuple[int, dict]:
    """One HTTP exchange on a fresh connection: (status, JSON body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def start_server(model_dir: Path, port: int, *extra: str) -> subprocess.Popen:
    """``python -m pipeline serve`` in its own process, once it answers; stopped with ``stop_server``."""
    command = [sys.executable, "-m", "pipeline", "serve", "--model-dir", str(model_dir), "--port", str(port)]
    log = tempfile.TemporaryFile("w+")  # not a pipe: a server that logs much must never block on it
    server = subprocess.Popen([*command, *extra], stdout=log, stderr=subprocess.STDOUT, text=True)
    server.log = log
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise UserError(f"the server stopped at start: {stop_server(server).strip()[-500:]}")
        try:
            if request(port, "/page/models", timeout=2)[0] == 200:
                return server
        except OSError:
            time.sleep(0.5)
    stop_server(server)
    raise UserError("the server did not answer within 300 s")


def stop_server(server: subprocess.Popen) -> str:
    """Stops it (SIGINT, as Ctrl-C) and returns what it printed."""
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    server.log.seek(0)
    printed = server.log.read()
    server.log.close()
    return printed


def peak_memory_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def one_level(port: int, model: str, sentences: list[str], clients: int, seconds: float) -> dict:
    """``clients`` threads, each sending requests back to back for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        sent = 0
        while time.monotonic() < stop:
            sentence = sentences[(index + sent * clients) % len(sentences)]
            began = time.perf_counter()
            try:
                status, _ = request(port, f"/v1/models/{model}:predict", {"instances": [sentence]})
            except OSError:
                status = 0
            if status == 200:
                latencies[index].append(time.perf_counter() - began)
            else:
                errors[index] += 1
            sent += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    before = request(port, "/page/stats")[1]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    after = request(port, "/page/stats")[1]
    done = np.array([t for ts in latencies for t in ts]) * 1000
    return {
        "clients": clients,
        "requests": int(done.size),
        "errors": sum(errors),
        "requests_per_second": round(done.size / elapsed, 2),
        "p50_ms": round(float(np.percentile(done, 50)), 1) if done.size else None,
        "p99_ms": round(float(np.percentile(done, 99)), 1) if done.size else None,
        # sentences per call of the model: how much the batcher merged at this load
        "mean_batch": round(
            (after["examples"] - before["examples"]) / max(after["batches"] - before["batches"], 1), 1
        ),
    }


def heavy_request(sentences: list[str]) -> dict:
    """The heaviest request the export accepts in full: HEAVY_SENTENCES sentences of
    HEAVY_CHARACTERS characters (test sentences end to end), at the largest beam."""
    text = " ".join(sentences[:50])
    long = (text * (HEAVY_CHARACTERS // max(len(text), 1) + 1))[:HEAVY_CHARACTERS]
    inputs = {"sources": [long] * HEAVY_SENTENCES, "beam_size": MAX_BEAM_SIZE,
              "length_penalty": DEFAULT_LENGTH_PENALTY}  # fmt: skip
    return {"signature_name": "translate", "inputs": inputs}


def percentiles(seconds: list[float]) -> dict:
    done = np.array(seconds) * 1000
    if not done.size:
        return {"p50_ms": None, "p99_ms": None}
    return {
        "p50_ms": round(float(np.percentile(done, 50)), 1),
        "p99_ms": round(float(np.percentile(done, 99)), 1),
    }


def flood_level(port: int, model: str, sentences: list[str], seconds: float, clients: int = FLOOD_CLIENTS,
                patience: float = 120.0) -> dict:  # fmt: skip
    """One client's one-sentence requests alone for ``seconds``, then again while ``clients`` others
    send heavy requests back to back: its p50 and p99 both ways, and the codes each side got. A
    heavy client waits for an answer until ``patience`` seconds after the flood ends, then gives up
    and closes the connection ("no answer"), as a client with a timeout does; one told 503 waits
    ``BACKOFF_SECONDS`` before it sends again."""
    warm = heavy_request(sentences)
    warm["inputs"]["sources"] = warm["inputs"]["sources"][:1]
    request(port, f"/v1/models/{model}:predict", warm)  # the first call of a signature optimises its graph
    alone = one_level(port, model, sentences, 1, seconds)
    light: list[float] = []
    codes: dict[str, Counter] = {"light": Counter(), "flood": Counter()}
    stop = time.monotonic() + seconds
    heavy = heavy_request(sentences)

    def send(side: str, body: dict, timeout: float = 120.0) -> tuple[int, float]:
        began = time.perf_counter()
        try:
            status, _ = request(port, f"/v1/models/{model}:predict", body, timeout)
        except OSError:  # a timeout too
            status = 0
        codes[side][str(status) if status else "no answer"] += 1
        return status, time.perf_counter() - began

    def flood() -> None:
        while time.monotonic() < stop:
            status, _ = send("flood", heavy, max(stop - time.monotonic(), 0.0) + patience)
            if status == 503:
                time.sleep(BACKOFF_SECONDS)

    def client() -> None:
        sent = 0
        while time.monotonic() < stop:
            status, seconds = send("light", {"instances": [sentences[sent % len(sentences)]]})
            if status == 200:
                light.append(seconds)
            sent += 1

    threads = [threading.Thread(target=flood) for _ in range(clients)] + [threading.Thread(target=client)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"clients": clients, "requests": len(light), **percentiles(light),
            "alone_p50_ms": alone["p50_ms"], "alone_p99_ms": alone["p99_ms"],
            "light_codes": dict(sorted(codes["light"].items())),
            "flood_codes": dict(sorted(codes["flood"].items()))}  # fmt: skip


def load_test(
    model_dir: Path,
    model: str,
    pair: str,
    data_dir: Path,
    out_dir: Path,
    levels: tuple[int, ...] = (1, 8, 32),
    seconds: float = 20.0,
    port: int = 8599,
    max_batch_size: int = 64,
    batch_wait_ms: float = 5.0,
    flood_clients: int = FLOOD_CLIENTS,
) -> Path:
    """Measures each level in turn against one server, then the flood (unless ``flood_clients`` is 0);
    writes ``serve.json`` and ``serve.md``."""
    sentences, _ = corpus.read_split(pair, "test", data_dir)
    ceiling = round(matmul_rate(), 1)  # before the server starts: the machine alone
    batching = ("--max-batch-size", str(max_batch_size), "--batch-wait-ms", str(batch_wait_ms))
    server = start_server(model_dir, port, "--models", model, *batching)
    try:
        status, served = request(port, f"/v1/models/{model}")
        if status != 200:
            raise UserError(f"the server does not serve {model}: {served.get('error')}")
        one_level(port, model, sentences, 1, min(seconds, 3.0))  # warm-up: the first calls trace
        rows = []
        for clients in levels:
            row = one_level(port, model, sentences, clients, seconds)
            row["peak_memory_mib"] = peak_memory_mib(server.pid)
            rows.append(row)
            print(f"{clients} clients: {row}", flush=True)
        flood = flood_level(port, model, sentences, seconds, flood_clients) if flood_clients else None
        if flood:
            flood["peak_memory_mib"] = peak_memory_mib(server.pid)
            print(f"flood: {flood}", flush=True)
    finally:
        stop_server(server)
    result = {
        "model": model,
        "version": int(served["model_version_status"][0]["version"]),
        "pair": pair,
        "seconds_per_level": seconds,
        "max_batch_size": max_batch_size,
        "batch_wait_ms": batch_wait_ms,
        "ceiling_gflops": ceiling,
        "cpus": os.cpu_count(),
        "levels": rows,
        "flood": flood,
    }
    write_text(out_dir / layout.SERVE_MD, markdown(result))
    return write_json(out_dir / layout.SERVE_JSON, result)


def write_exchange(
    model_dir: Path, model: str, pair: str, data_dir: Path, out: Path, port: int = 8599
) -> Path:
    """Serves ``model`` and its ids servable as ``make serve`` would, sends them the README's requests
    for the first test sentence, and writes each command with the server's answer to ``out``."""
    sentence = corpus.read_split(pair, "test", data_dir)[0][0]
    sp = load_tokenizer(saved_model_dir(model_dir / model) / "assets" / layout.TOKENIZER)
    server = start_server(model_dir, port, "--models", model, model + IDS_SUFFIX)
    try:
        text = exchange(port, model, model + IDS_SUFFIX, sentence, sp.encode(sentence))
    finally:
        stop_server(server)
    return write_text(out, text)


def exchange(port: int, model: str, ids_model: str, sentence: str, ids: list[int]) -> str:
    """The README's curl exchange, run: each command and the server's answer, as Markdown."""
    greedy = {"sources": [sentence], "beam_size": 1, "length_penalty": 0.6}
    ids_inputs = {"source_ids": [ids], "source_lengths": [len(ids)], "beam_size": 5, "length_penalty": 0.6}
    calls = [
        (model, {"instances": [sentence]}),
        (model, {"signature_name": "translate", "inputs": greedy}),
        (ids_model, {"inputs": ids_inputs}),
    ]
    blocks = []
    for name, body in calls:
        status, answer = request(port, f"/v1/models/{name}:predict", body)
        if status != 200:
            raise UserError(f"the server answered {status} to the README's request for {name}: {answer}")
        command = f"curl -s -d '{json.dumps(body, ensure_ascii=False)}' \\\n    http://localhost:8501/v1/models/{name}:predict"
        blocks.append(f"```sh\n{command}\n```\n\n```json\n{json.dumps(answer, ensure_ascii=False)}\n```\n")
    return "\n".join(blocks)


def markdown(result: dict) -> str:
    intro = (
        f"`make servebench`: `{result['model']}` (version {result['version']}) served by `nmt serve` on "
        f"localhost, {result['cpus']} cores, `make bench` ceiling {result['ceiling_gflops']} GFLOP/s. Each "
        f"client sends one {result['pair']} test sentence per request (beam 5) and waits for the answer, "
        f"for {result['seconds_per_level']:g} s per level; the server merges concurrent requests into "
        f"batches of up to {result['max_batch_size']} sentences, waiting at most {result['batch_wait_ms']:g} "
        "ms (sentences per call: how many it merged). Peak memory is the server process's (VmHWM), over the "
        "run so far."
    )
    lines = [
        intro,
        "",
        "| clients | requests | errors | requests/s | p50 ms | p99 ms | sentences per call | peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = ("clients", "requests", "errors", "requests_per_second", "p50_ms", "p99_ms", "mean_batch",
            "peak_memory_mib")  # fmt: skip
    for r in result["levels"]:
        lines.append("| " + " | ".join(str(r[k]) for k in keys) + " |")
    if result.get("flood"):
        lines += ["", *flood_markdown(result["flood"], result["pair"])]
    return "\n".join(lines) + "\n"


def flood_markdown(flood: dict, pair: str) -> list[str]:
    """The flood level's row: one client's latency beside its latency alone, and the flood's codes."""
    codes = ", ".join(f"{n} x {code}" for code, n in flood["flood_codes"].items())
    return [
        f"Flood: one client sends one {pair} test sentence per request while {flood['clients']} others send "
        f"the heaviest request the export accepts ({HEAVY_SENTENCES} sentences of {HEAVY_CHARACTERS} "
        f"characters, beam {MAX_BEAM_SIZE}) back to back; the one client alone first, for as long.",
        "",
        "| flood clients | one-sentence requests | p50 ms alone | p99 ms alone | p50 ms in the flood "
        "| p99 ms in the flood | one-sentence codes | flood codes | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {flood['clients']} | {flood['requests']} | {flood['alone_p50_ms']} | {flood['alone_p99_ms']} | "
        f"{flood['p50_ms']} | {flood['p99_ms']} | "
        f"{', '.join(f'{n} x {c}' for c, n in flood['light_codes'].items())} | {codes} | "
        f"{flood.get('peak_memory_mib')} |",
    ]
