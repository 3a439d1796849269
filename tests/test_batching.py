"""The batcher on a stand-in model that records its calls: what is merged, what is not, and the bounds."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import tensorflow as tf

from pipeline.serving.batching import MAX_WORK, Batcher
from pipeline.serving.repository import Servable, ServingError, TensorInfo

IDS = {
    "source_ids": TensorInfo(tf.int32, (None, None), "source_ids"),
    "source_lengths": TensorInfo(tf.int32, (None,), "source_lengths"),
    "beam_size": TensorInfo(tf.int32, (), "beam_size"),
}


class Recorder:
    """A signature that returns each row's first id and length, and remembers the batches it saw."""

    name = "translate_ids"
    inputs = IDS

    def __init__(self, seconds: float = 0.0, fail_on: int | None = None):
        self.calls: list[int] = []
        self.seconds, self.fail_on = seconds, fail_on

    def __call__(self, inputs: dict) -> dict:
        time.sleep(self.seconds)
        if self.fail_on is not None and (inputs["source_ids"] == self.fail_on).any():
            message = (
                "Graph execution error:\n\nDetected at node a/Assert defined at (most recent call last):\n"
                "<stack trace unavailable>\nassertion failed: [request too large: sentences x pieces] "
                "[Condition x <= y did not hold element-wise:] [x = ] [9]\n\t [[{{node a/Assert}}]]"
            )
            raise tf.errors.InvalidArgumentError(None, None, message)
        self.calls.append(len(inputs["source_ids"]))
        return {"first": inputs["source_ids"][:, 0] * 1, "lengths": inputs["source_lengths"] + 0}


SERVABLE = Servable("m", 1, None, {}, None, None)


def request(first: int, rows: int = 1, width: int = 3, beam: int = 5) -> dict:
    ids = np.full((rows, width), 7, np.int32)
    ids[:, 0] = first
    return {"source_ids": ids, "source_lengths": np.full(rows, width, np.int32), "beam_size": np.array(beam)}


async def together(batcher: Batcher, signature, requests: list[dict]) -> list:
    worker = asyncio.create_task(batcher.run())
    try:
        return await asyncio.gather(
            *(batcher.submit(SERVABLE, signature, r) for r in requests), return_exceptions=True
        )
    finally:
        worker.cancel()


def test_concurrent_requests_run_as_one_call_and_each_gets_its_own_rows():
    recorder = Recorder()
    requests = [request(i, rows=1 + i % 2, width=2 + i) for i in range(5)]  # widths differ: padded
    answers = asyncio.run(together(Batcher(max_batch_size=64, max_wait=0.05), recorder, requests))
    assert recorder.calls == [7]  # 1 + 2 + 1 + 2 + 1 rows
    for i, answer in enumerate(answers):
        assert answer["first"].tolist() == [i] * (1 + i % 2)
        assert answer["lengths"].tolist() == [2 + i] * (1 + i % 2)


def test_requests_with_other_scalars_are_never_merged():
    recorder = Recorder()
    requests = [request(1, beam=5), request(2, beam=1), request(3, beam=5)]
    answers = asyncio.run(together(Batcher(max_wait=0.05), recorder, requests))
    assert sorted(recorder.calls) == [1, 2] and [a["first"][0] for a in answers] == [1, 2, 3]


def test_a_batch_holds_at_most_max_batch_size_examples():
    recorder = Recorder()
    asyncio.run(together(Batcher(max_batch_size=4, max_wait=0.05), recorder, [request(i) for i in range(10)]))
    assert recorder.calls == [4, 4, 2]


def test_merging_never_makes_a_batch_the_export_would_search_with_a_lower_beam():
    # Sources of 255 pieces (256 with EOS) at beam 5: 1280 of MAX_WORK per row, so 102 rows fit.
    fit = MAX_WORK // (256 * 5)
    recorder = Recorder()
    requests = [request(1, rows=60, width=255), request(2, rows=60, width=255)]
    asyncio.run(together(Batcher(max_batch_size=512, max_wait=0.05), recorder, requests))
    assert recorder.calls == [60, 60] and 60 <= fit < 120
    recorder = Recorder()  # the same rows, short: merged
    asyncio.run(
        together(Batcher(max_batch_size=512, max_wait=0.05), recorder, [request(1, 60), request(2, 60)])
    )
    assert recorder.calls == [120]


def test_waiting_examples_are_bounded_and_a_refused_request_does_not_stop_the_others():
    async def scenario():
        batcher = Batcher(max_wait=0.0, max_queued=4)
        slow = Recorder(seconds=0.3)
        worker = asyncio.create_task(batcher.run())
        running = asyncio.create_task(batcher.submit(SERVABLE, slow, request(1)))
        await asyncio.sleep(0.1)  # the first call is running: the queue is empty again
        waiting = asyncio.create_task(batcher.submit(SERVABLE, slow, request(2, rows=3)))
        await asyncio.sleep(0.01)
        with pytest.raises(ServingError) as busy:
            await batcher.submit(SERVABLE, slow, request(3, rows=2))  # 3 + 2 > 4
        with pytest.raises(ServingError) as too_large:
            await batcher.submit(SERVABLE, slow, request(4, rows=5))  # more than can ever wait
        answers = await asyncio.gather(running, waiting)
        worker.cancel()
        return busy.value, too_large.value, answers

    busy, too_large, answers = asyncio.run(scenario())
    assert busy.status == 503 and "busy" in str(busy)
    assert too_large.status == 413 and "at most 4" in str(too_large)
    assert [a["first"].tolist() for a in answers] == [[1], [2, 2, 2]]


def test_what_the_model_refuses_is_a_400_for_its_batch_and_the_next_batch_runs():
    recorder = Recorder(fail_on=99)

    async def scenario():
        batcher = Batcher(max_wait=0.02)
        worker = asyncio.create_task(batcher.run())
        refused = await asyncio.gather(
            batcher.submit(SERVABLE, recorder, request(99)), return_exceptions=True
        )
        after = await batcher.submit(SERVABLE, recorder, request(5))
        worker.cancel()
        return refused[0], after

    refused, after = asyncio.run(scenario())
    assert isinstance(refused, ServingError) and refused.status == 400
    assert str(refused) == "request too large: sentences x pieces"  # the assertion's words, not TensorFlow's
    assert after["first"].tolist() == [5]
