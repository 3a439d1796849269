"""Concurrent requests merged into one call, so that throughput grows with load.

Requests for the same servable, signature and scalar inputs (beam size, length penalty) wait
together up to ``max_wait`` seconds, or until ``max_batch_size`` examples are there, and run as
one batch; the results are split back per request. One batch runs at a time, in a worker
thread, with all the machine's cores; the next batch gathers meanwhile.

Two bounds hold whatever clients send:
- memory: at most ``max_queued`` examples wait, beyond which a request gets 503 at once;
- fairness of the beam: a merged batch never holds more work than the export lets a beam of
  the requested size search (``MAX_WORK`` rows x source pieces), so merging never lowers a
  request's beam below what it would get alone.
"""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from pipeline.constants import DEFAULT_BEAM_SIZE, PAD_ID
from pipeline.serving.repository import Servable, ServingError, Signature

# The export's bound on one search: rows (examples x beams) x source pieces (pipeline.decoding.export).
MAX_WORK = 2**17
MAX_SOURCE_PIECES = 256


@dataclass
class Pending:
    inputs: dict[str, np.ndarray]
    rows: int
    width: int  # source pieces of its longest example, at most (EOS included)
    beam: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


def source_width(inputs: dict[str, np.ndarray]) -> int:
    """An upper bound on the source pieces of the longest example, EOS included: a piece covers at
    least one character, and SentencePiece may add one for the word boundary."""
    if "sources" in inputs:
        longest = max((len(s.decode("utf-8", "replace")) for s in inputs["sources"]), default=0)
        return min(longest + 2, MAX_SOURCE_PIECES)
    if "source_lengths" in inputs:
        return min(int(inputs["source_lengths"].max(initial=0)) + 1, MAX_SOURCE_PIECES)
    return MAX_SOURCE_PIECES  # unknown: counted as the longest, never merged beyond the bound


def merge(batch: list[Pending], signature: Signature) -> dict[str, np.ndarray]:
    """Batched inputs concatenated along the examples, padded on later dimensions; scalars once."""
    merged = {}
    for name, info in signature.inputs.items():
        arrays = [p.inputs[name] for p in batch]
        if not info.batched:
            merged[name] = arrays[0]
            continue
        shape = np.max([a.shape for a in arrays], axis=0)
        fill = b"" if info.dtype == tf.string else PAD_ID
        padded = [np.pad(a, [(0, 0)] + [(0, int(s) - n) for s, n in zip(shape[1:], a.shape[1:], strict=True)],
                         constant_values=fill) for a in arrays]  # fmt: skip
        merged[name] = np.concatenate(padded)
    return merged


def split(outputs: dict[str, np.ndarray], batch: list[Pending]) -> list[dict[str, np.ndarray]]:
    """Each request's rows of every output (every output of our signatures is batched)."""
    parts, start = [], 0
    for pending in batch:
        parts.append({k: v[start : start + pending.rows] for k, v in outputs.items()})
        start += pending.rows
    return parts


def refusal(error: tf.errors.InvalidArgumentError) -> str:
    """What the model said, without TensorFlow's wrapping: an assertion's own message (the export
    bounds every request with ``tf.debugging`` asserts), or the first line that is not preamble."""
    found = re.search(r"assertion failed: \[([^\]]+)\]", error.message)
    if found:
        return found.group(1)
    preamble = ("Graph execution error", "Detected at node", "<stack trace", "[[")
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith(preamble)), "invalid argument")


def invoke(signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One call of the model; what the model refuses (a request too large) is the client's 400."""
    try:
        return signature(inputs)
    except tf.errors.InvalidArgumentError as error:
        raise ServingError(400, refusal(error)) from error


class Batcher:
    def __init__(self, max_batch_size: int = 64, max_wait: float = 0.005, max_queued: int = 2048):
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.max_queued = max_queued
        self.queued = 0  # examples waiting, over every queue
        self.queues: dict[tuple, list[Pending]] = {}
        self.calls: dict[tuple, tuple[Servable, Signature]] = {}
        self.arrival = asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.batches = 0  # calls made, for the log and the tests
        self.examples = 0

    async def submit(self, servable: Servable, signature: Signature, inputs: dict[str, np.ndarray]) -> dict:
        """Runs ``signature`` on ``inputs``, merged with other requests; the outputs of these rows."""
        batched = [k for k, info in signature.inputs.items() if info.batched]
        if not batched:  # nothing to merge along
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, invoke, signature, inputs)
        rows = len(inputs[batched[0]])
        if any(len(inputs[k]) != rows for k in batched):
            raise ServingError(400, f"inputs {', '.join(batched)} must have the same number of examples")
        if rows > self.max_queued:
            raise ServingError(
                413, f"{rows} examples in one request: the server takes at most {self.max_queued}"
            )
        if self.queued + rows > self.max_queued:
            raise ServingError(503, f"the server is busy ({self.queued} examples waiting): try again shortly")
        scalars = tuple((k, inputs[k].tobytes()) for k, info in signature.inputs.items() if not info.batched)
        key = (servable.name, servable.version, signature.name, scalars)
        beam = int(inputs["beam_size"]) if "beam_size" in inputs else DEFAULT_BEAM_SIZE
        pending = Pending(inputs, rows, source_width(inputs), max(1, min(beam, 32)),
                          asyncio.get_running_loop().create_future())  # fmt: skip
        self.queues.setdefault(key, []).append(pending)
        self.calls[key] = (servable, signature)
        self.queued += rows
        self.arrival.set()
        return await pending.future

    def take(self, key: tuple) -> list[Pending]:
        """The longest run of the queue's first requests that fits one batch (at least one)."""
        queue = self.queues[key]
        batch, rows, width = [queue[0]], queue[0].rows, queue[0].width
        for pending in queue[1:]:
            wider = max(width, pending.width)
            fits = (rows + pending.rows) * wider * max(p.beam for p in (*batch, pending)) <= MAX_WORK
            if rows + pending.rows > self.max_batch_size or not fits:
                break
            batch.append(pending)
            rows, width = rows + pending.rows, wider
        del queue[: len(batch)]
        if not queue:
            del self.queues[key]
        self.queued -= rows
        return batch

    def ready(self, now: float) -> tuple[tuple | None, float]:
        """The queue to run now (full, or its first request has waited long enough), else how long to wait."""
        wait = self.max_wait
        for key, queue in self.queues.items():
            if sum(p.rows for p in queue) >= self.max_batch_size:
                return key, 0.0
            waited = now - queue[0].arrived
            if waited >= self.max_wait:
                return key, 0.0
            wait = min(wait, self.max_wait - waited)
        return None, wait

    async def run(self) -> None:
        """Forever: the next batch, run in the worker thread, its results handed to its requests."""
        loop = asyncio.get_running_loop()
        while True:
            if not self.queues:
                self.arrival.clear()
                await self.arrival.wait()
            key, wait = self.ready(time.monotonic())
            if key is None:
                self.arrival.clear()
                try:
                    await asyncio.wait_for(self.arrival.wait(), wait)
                except asyncio.TimeoutError:  # the builtin TimeoutError from Python 3.11
                    pass
                continue
            servable, signature = self.calls[key]
            batch = self.take(key)
            try:
                outputs = await loop.run_in_executor(
                    self.executor, invoke, signature, merge(batch, signature)
                )
            except Exception as error:  # noqa: BLE001  (handed to its requests: a 400, or a 500 if a bug)
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            self.batches += 1
            self.examples += sum(p.rows for p in batch)
            for pending, part in zip(batch, split(outputs, batch), strict=True):
                if not pending.future.done():  # a client that went away has cancelled it
                    pending.future.set_result(part)
