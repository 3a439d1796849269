"""Requests cut into bounded calls that take turns, merged with others, each before its deadline.

Work is counted as the export counts it: rows (sentences x beams) x source pieces. A request is
cut into calls of at most ``call_work`` of it, so no call runs long. The one worker thread runs
one call at a time, with all the machine's cores; the next call is the one of the request that
has had the least work done so far (new requests first, the smallest first among them, then the
queued ones in turns), merged
with the next calls of other requests for the same servable, signature and scalar inputs (beam
size, length penalty), up to ``max_batch_size`` sentences and ``call_work``. A request waits at
most ``max_wait`` seconds for others to join it.

What holds whatever clients send:
- every request has a deadline; one still queued at it leaves the queue with 504, and no call
  starts for a request whose deadline has passed or whose client has gone (its future cancelled);
- a request that could not finish within its deadline, given the work queued (at the measured
  seconds per unit of work, sharing turns), is refused with 503 at once; queued ones go on;
- memory: at most ``max_queued`` sentences wait, beyond which a request gets 503 at once;
- the beam: a call never holds more work than the export searches at the beam asked (``MAX_WORK``),
  so neither cutting nor merging lowers a request's beam.
"""

from __future__ import annotations

import asyncio
import re
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from pipeline.constants import DEFAULT_BEAM_SIZE, PAD_ID
from pipeline.decoding.export import MAX_BEAM_SIZE, MAX_SOURCE_PIECES, MAX_WORK
from pipeline.serving.repository import Servable, ServingError, Signature

# One call's work, at most: one sentence of the longest (256 pieces) at the largest beam (32), so
# a one-sentence request waits at most for one such call, whatever else is queued.
CALL_WORK = MAX_SOURCE_PIECES * MAX_BEAM_SIZE
DEADLINE_SECONDS = 30.0  # TensorFlow Serving's REST default (--rest_api_timeout_in_ms=30000)
DECAY = 0.9  # the weight of the past in the seconds per unit of work, per call


@dataclass(eq=False)
class Pending:
    """One request: its inputs, the calls it still needs, and the parts of its answer so far."""

    inputs: dict[str, np.ndarray]
    rows: int
    width: int  # source pieces of its longest example, at most (EOS included)
    beam: int
    key: tuple  # what it may be merged with: servable, version, signature and scalar inputs
    signature: Signature
    future: asyncio.Future
    deadline: float  # time.monotonic() at which it gets 504
    per_call: int  # sentences in one of its calls, at most
    arrived: float = field(default_factory=time.monotonic)
    started: int = 0  # sentences handed to calls so far
    done: int = 0  # work handed to calls so far: who has had least goes next
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    @property
    def unit(self) -> int:
        """Work of one of its sentences."""
        return self.width * self.beam

    def remaining(self) -> int:
        return (self.rows - self.started) * self.unit

    def next_rows(self) -> int:
        return min(self.per_call, self.rows - self.started)


def source_width(inputs: dict[str, np.ndarray]) -> int:
    """An upper bound on the source pieces of the longest example, EOS included: a piece covers at
    least one character of the NFKC-normalised text (SentencePiece's normalisation, which may
    expand one character into several: "ﬃ" is "ffi"), and one may be added for the word boundary."""
    if "sources" in inputs:
        texts = (unicodedata.normalize("NFKC", s.decode("utf-8", "replace")) for s in inputs["sources"])
        longest = max((len(text) for text in texts), default=0)
        return min(longest + 2, MAX_SOURCE_PIECES)
    if "source_ids" in inputs and inputs["source_ids"].ndim == 2:
        return min(int(inputs["source_ids"].shape[1]) + 1, MAX_SOURCE_PIECES)
    return MAX_SOURCE_PIECES  # unknown: counted as the longest


def merge(calls: list[tuple[Pending, int, int]], signature: Signature) -> dict[str, np.ndarray]:
    """The calls' rows of each batched input concatenated, padded on later dimensions; scalars once."""
    merged = {}
    for name, info in signature.inputs.items():
        if not info.batched:
            merged[name] = calls[0][0].inputs[name]
            continue
        arrays = [p.inputs[name][start : start + n] for p, start, n in calls]
        shape = np.max([a.shape for a in arrays], axis=0)
        fill = b"" if info.dtype == tf.string else PAD_ID
        padded = [np.pad(a, [(0, 0)] + [(0, int(s) - n) for s, n in zip(shape[1:], a.shape[1:], strict=True)],
                         constant_values=fill) for a in arrays]  # fmt: skip
        merged[name] = np.concatenate(padded)
    return merged


def split(
    outputs: dict[str, np.ndarray], calls: list[tuple[Pending, int, int]]
) -> list[dict[str, np.ndarray]]:
    """Each call's rows of every output (every output of our signatures is batched)."""
    parts, start = [], 0
    for _, _, rows in calls:
        parts.append({k: v[start : start + rows] for k, v in outputs.items()})
        start += rows
    return parts


def joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A request's answer from its calls' parts, padded to the widest on later dimensions."""
    if len(parts) == 1:
        return parts[0]
    answer = {}
    for name, first in parts[0].items():
        arrays = [p[name] for p in parts]
        shape = np.max([a.shape for a in arrays], axis=0)
        fill = b"" if first.dtype == object else 0
        padded = [np.pad(a, [(0, 0)] + [(0, int(s) - n) for s, n in zip(shape[1:], a.shape[1:], strict=True)],
                         constant_values=fill) for a in arrays]  # fmt: skip
        answer[name] = np.concatenate(padded)
    return answer


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
    """One call of the model; what the model refuses is the client's 400."""
    try:
        return signature(inputs)
    except tf.errors.InvalidArgumentError as error:
        raise ServingError(400, refusal(error)) from error


def expired(deadline_seconds: float) -> ServingError:
    return ServingError(
        504, f"Deadline Exceeded: the request was not answered within its {deadline_seconds:g} s deadline"
    )


class Batcher:
    def __init__(self, max_batch_size: int = 64, max_wait: float = 0.005, max_queued: int = 2048,
                 deadline: float = DEADLINE_SECONDS, call_work: int = CALL_WORK):  # fmt: skip
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.max_queued = max_queued
        self.deadline = deadline
        self.call_work = call_work
        self.queued = 0  # sentences waiting for a call, over every request
        self.pending: list[Pending] = []  # requests with calls still to make, in arrival order
        self.arrival = asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.batches = 0  # calls made, for the page, the log and the tests
        self.examples = 0
        # What a call takes: a fixed part (the shortest call seen) and seconds per unit of work
        # beyond it, from the decayed seconds and work of past calls: of full calls (at least half
        # of call_work) once there are some, as a large request's are; small ones cost more a unit.
        self.overhead: float | None = None
        self.timed = {"full": (0.0, 0), "any": (0.0, 0)}
        self.traced: set[tuple] = set()  # keys whose first call ran (it also optimises the graph)
        self.on_call: Callable[[int], None] = lambda sentences: None  # the metrics' hook

    def seconds_per_work(self) -> float | None:
        seconds, work = self.timed["full"] if self.timed["full"][1] else self.timed["any"]
        return seconds / work if work else None

    def per_call(self, unit: int) -> int:
        """Sentences in one call of a request whose sentences are ``unit`` of work each, at most."""
        return max(1, min(self.max_batch_size, self.call_work // unit))

    def calls(self, work: int, unit: int) -> int:
        """Calls that ``work`` of a request whose sentences are ``unit`` of work each is cut into."""
        return -(-work // (self.per_call(unit) * unit))

    def admit(self, rows: int, unit: int) -> None:
        """Refuses at once (503) what could not finish within its deadline, or would overfill the queue."""
        if self.queued + rows > self.max_queued:
            raise ServingError(503, f"the server is busy ({self.queued} examples waiting): try again shortly")
        rate = self.seconds_per_work()
        if rate is None:
            return
        work = rows * unit  # sharing turns: every queued request does as much as this one, or all it has
        shares = [(min(p.remaining(), work), p) for p in self.pending]
        calls = self.calls(work, unit) + sum(self.calls(w, p.unit) for w, p in shares)
        seconds = self.overhead * calls + rate * (work + sum(w for w, _ in shares))
        if seconds > self.deadline:
            raise ServingError(
                503,
                f"the server is overloaded: the work queued would take about {seconds:.1f} s to answer "
                f"this request, beyond its {self.deadline:g} s deadline; try again later",
            )

    def pending_for(
        self, servable: Servable, signature: Signature, inputs: dict[str, np.ndarray], rows: int
    ) -> Pending:
        scalars = tuple((k, inputs[k].tobytes()) for k, info in signature.inputs.items() if not info.batched)
        key = (servable.name, servable.version, signature.name, scalars)
        beam = int(inputs["beam_size"]) if "beam_size" in inputs else DEFAULT_BEAM_SIZE
        beam, width = max(1, min(beam, MAX_BEAM_SIZE)), source_width(inputs)
        if rows * width > MAX_WORK:  # what the export alone refuses (pieces counted by characters here)
            raise ServingError(
                400, f"request too large: sentences x source pieces must be at most {MAX_WORK}"
            )
        per_call = self.per_call(width * beam)
        future = asyncio.get_running_loop().create_future()
        return Pending(
            inputs, rows, width, beam, key, signature, future, time.monotonic() + self.deadline, per_call
        )

    async def submit(self, servable: Servable, signature: Signature, inputs: dict[str, np.ndarray]) -> dict:
        """Runs ``signature`` on ``inputs`` in calls shared with other requests; the outputs of these rows."""
        batched = [k for k, info in signature.inputs.items() if info.batched]
        if not batched:  # nothing to merge or cut along
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, invoke, signature, inputs)
        rows = len(inputs[batched[0]])
        if any(len(inputs[k]) != rows for k in batched):
            raise ServingError(400, f"inputs {', '.join(batched)} must have the same number of examples")
        if rows > self.max_queued:
            raise ServingError(
                413, f"{rows} examples in one request: the server takes at most {self.max_queued}"
            )
        pending = self.pending_for(servable, signature, inputs, rows)
        self.admit(rows, pending.unit)
        self.pending.append(pending)
        self.queued += rows
        self.arrival.set()
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), pending.deadline - time.monotonic())
        except TimeoutError:  # asyncio's, the builtin from Python 3.11
            raise expired(self.deadline) from None
        finally:  # answered, past its deadline, or its client gone (cancelled): no more calls for it
            self.forget(pending)

    def forget(self, pending: Pending) -> None:
        """No more calls for it: answered, past its deadline, or its client gone."""
        if pending in self.pending:
            self.pending.remove(pending)
            self.queued -= pending.rows - pending.started

    def expire(self, now: float) -> None:
        """Drops the requests past their deadline (504) before a call starts, should the worker come
        round before their timers (``submit``'s) have fired."""
        for pending in list(self.pending):
            if now >= pending.deadline:
                if not pending.future.done():
                    pending.future.set_exception(expired(self.deadline))
                self.forget(pending)

    def take(self) -> list[tuple[Pending, int, int]]:
        """The next call: the next rows of the request that has had least work, and of others like it."""
        # Least work done first; of those (new ones), the one with least left: a sentence that
        # arrives with heavy requests still waiting for their first call goes before them.
        order = sorted(self.pending, key=lambda p: (p.done, p.remaining(), p.arrived))
        first = order[0]
        calls, rows, width = [(first, first.started, first.next_rows())], first.next_rows(), first.width
        for pending in order[1:]:
            n, wider = pending.next_rows(), max(width, pending.width)
            fits = rows + n <= self.max_batch_size and (rows + n) * wider * first.beam <= self.call_work
            if pending.key != first.key or not fits:
                continue
            calls.append((pending, pending.started, n))
            rows, width = rows + n, wider
        for pending, _, n in calls:
            pending.started += n
            pending.done += n * pending.unit
            self.queued -= n
            if pending.started == pending.rows:  # its last call: nothing left to queue
                self.pending.remove(pending)
        return calls

    def ready(self, now: float) -> float:
        """0 when a call should start now (enough sentences, or the oldest has waited long enough),
        else how long to wait for others to join."""
        if self.queued >= self.max_batch_size:
            return 0.0
        return max(0.0, self.max_wait - (now - min(p.arrived for p in self.pending)))

    async def run(self) -> None:
        """Forever: the next call, run in the worker thread, its rows handed to their requests."""
        while True:
            self.expire(time.monotonic())
            if not self.pending:
                self.arrival.clear()
                await self.arrival.wait()
                continue
            wait = self.ready(time.monotonic())
            if wait > 0:
                self.arrival.clear()
                try:
                    await asyncio.wait_for(self.arrival.wait(), wait)
                except TimeoutError:
                    pass
                continue
            await self.call(self.take())

    async def call(self, calls: list[tuple[Pending, int, int]]) -> None:
        signature, key = calls[0][0].signature, calls[0][0].key
        began = time.monotonic()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self.executor, invoke, signature, merge(calls, signature)
            )
        except Exception as error:  # noqa: BLE001  (handed to its requests: a 400, or a 500 if a bug)
            for pending, _, _ in calls:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        self.timing(key, time.monotonic() - began, sum(n * p.unit for p, _, n in calls))
        sentences = sum(n for _, _, n in calls)
        self.batches, self.examples = self.batches + 1, self.examples + sentences
        self.on_call(sentences)
        for (pending, _, _), part in zip(calls, split(outputs, calls), strict=True):
            pending.parts.append(part)
            if pending.started == pending.rows and not pending.future.done():  # its last call
                pending.future.set_result(joined(pending.parts))

    def timing(self, key: tuple, seconds: float, work: int) -> None:
        """The fixed seconds of a call and the seconds per unit of work beyond them, a decayed average
        weighted by work: short calls, mostly overhead, do not make long ones look slow. A key's first
        call is left out (it optimises the graph, seconds that later calls do not take)."""
        if key not in self.traced:
            self.traced.add(key)
            return
        self.overhead = seconds if self.overhead is None else min(self.overhead, seconds)
        for kind in ("full", "any") if 2 * work >= self.call_work else ("any",):
            past_seconds, past_work = self.timed[kind]
            self.timed[kind] = (DECAY * past_seconds + seconds - self.overhead, DECAY * past_work + work)
