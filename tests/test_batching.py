"""The batcher on a stand-in model that records its calls: what is merged, what is not, and the bounds."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import tensorflow as tf

from pipeline.constants import DEFAULT_BEAM_SIZE
from pipeline.decoding.export import MAX_BEAM_SIZE, MAX_SOURCE_PIECES, MAX_WORK
from pipeline.serving.batching import CALL_WORK, Batcher, refusal, source_width
from pipeline.serving.repository import Servable, ServingError, TensorInfo

IDS = {  # sorted by name, as the repository lists a signature's inputs: the scalar first
    "beam_size": TensorInfo(tf.int32, (), "beam_size"),
    "source_ids": TensorInfo(tf.int32, (None, None), "source_ids"),
    "source_lengths": TensorInfo(tf.int32, (None,), "source_lengths"),
}


class Recorder:
    """A signature that returns each row's first id and length, and remembers the batches it saw;
    it takes ``seconds`` a row."""

    name = "translate_ids"
    inputs = IDS

    def __init__(self, seconds: float = 0.0, fail_on: int | None = None):
        self.calls: list[int] = []
        self.firsts: list[list[int]] = []  # each call's first ids: whose rows ran when
        self.seconds, self.fail_on = seconds, fail_on

    def __call__(self, inputs: dict) -> dict:
        time.sleep(self.seconds * len(inputs["source_ids"]))
        if self.fail_on is not None and (inputs["source_ids"] == self.fail_on).any():
            message = (
                "Graph execution error:\n\nDetected at node a/Assert defined at (most recent call last):\n"
                "<stack trace unavailable>\nassertion failed: [request too large: sentences x pieces] "
                "[Condition x <= y did not hold element-wise:] [x = ] [9]\n\t [[{{node a/Assert}}]]"
            )
            raise tf.errors.InvalidArgumentError(None, None, message)
        self.calls.append(len(inputs["source_ids"]))
        self.firsts.append(sorted(set(inputs["source_ids"][:, 0].tolist())))
        return {"first": inputs["source_ids"][:, 0] * 1, "lengths": inputs["source_lengths"] + 0}


class Pieces(Recorder):
    """A signature that returns the ids it was given and their text: outputs as wide as its call's widest
    source, ids padded with 0 and text with empty strings, as the export pads within one call."""

    def __call__(self, inputs: dict) -> dict:
        super().__call__(inputs)
        ids = inputs["source_ids"]
        text = [[str(i).encode() if i else b"" for i in row] for row in ids.tolist()]
        return {"ids": ids * 1, "pieces": np.array(text, dtype=object).reshape(ids.shape)}


class Echo:
    """A text signature that answers each source with itself."""

    name = "translate"
    inputs = {
        "beam_size": TensorInfo(tf.int32, (), "beam_size"),
        "sources": TensorInfo(tf.string, (None,), "sources"),
    }

    def __call__(self, inputs: dict) -> dict:
        return {"translations": inputs["sources"]}


class Plain(Recorder):
    """A signature with neither sources nor beam: what its work is, the batcher cannot tell."""

    inputs = {"x": TensorInfo(tf.int32, (None,), "x")}

    def __call__(self, inputs: dict) -> dict:
        self.calls.append(len(inputs["x"]))
        return {"y": inputs["x"] + 1}


SERVABLE = Servable("m", 1, None, {}, None, None)
KEY = (SERVABLE.name, SERVABLE.version, Recorder.name, ())


def request(first: int, rows: int = 1, width: int = 3, beam: int = 5) -> dict:
    ids = np.full((rows, width), 7, np.int32)
    ids[:, 0] = first
    return {"source_ids": ids, "source_lengths": np.full(rows, width, np.int32), "beam_size": np.array(beam)}


def timed(batcher: Batcher, overhead: float, per_work: float) -> Batcher:
    """``batcher`` after calls that took ``overhead`` seconds each and ``per_work`` a unit of work beyond."""
    batcher.timing(KEY, 60.0, 1)  # a key's first call (it optimises the graph): left out
    batcher.timing(KEY, overhead, 1)
    batcher.timing(KEY, overhead + per_work * batcher.call_work, batcher.call_work)
    return batcher


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


def test_a_call_takes_in_the_requests_like_its_first_past_one_that_is_not():
    recorder = Recorder()
    # In the order of the calls: 20 of work (beam 5), 24 (beam 3: another key), 40 (beam 5).
    requests = [request(1, beam=5), request(2, rows=2, beam=3), request(3, rows=2, beam=5)]
    answers = asyncio.run(together(Batcher(max_wait=0.05), recorder, requests))
    assert recorder.calls == [3, 2] and recorder.firsts == [[1, 3], [2]]
    assert [a["first"].tolist() for a in answers] == [[1], [2, 2], [3, 3]]


def test_a_request_waits_up_to_max_wait_for_others_to_join_its_call():
    recorder = Recorder()

    async def scenario():
        batcher = Batcher(max_wait=0.5)
        worker = asyncio.create_task(batcher.run())
        first = asyncio.create_task(batcher.submit(SERVABLE, recorder, request(1)))
        await asyncio.sleep(0.05)
        second = await batcher.submit(SERVABLE, recorder, request(2))
        answers = [await first, second]
        worker.cancel()
        return answers

    answers = asyncio.run(scenario())
    assert recorder.calls == [2] and [a["first"].tolist() for a in answers] == [[1], [2]]


def test_a_call_starts_at_once_when_enough_sentences_wait_to_fill_it():
    recorder = Recorder()
    began = time.monotonic()
    asyncio.run(together(Batcher(max_batch_size=4, max_wait=10.0), recorder, [request(1, rows=8)]))
    assert recorder.calls == [4, 4] and time.monotonic() - began < 5.0  # neither waited max_wait


def test_a_batch_holds_at_most_max_batch_size_examples_and_every_call_is_counted():
    recorder, batcher, counted = Recorder(), Batcher(max_batch_size=4, max_wait=0.05), []
    batcher.on_call = counted.append  # the metrics' hook
    asyncio.run(together(batcher, recorder, [request(i) for i in range(10)]))
    assert recorder.calls == [4, 4, 2] == counted and (batcher.batches, batcher.examples) == (3, 10)


def test_a_call_is_timed_with_its_work_sentences_x_beam_x_source_pieces():
    batcher, works = Batcher(max_wait=0.0), []
    batcher.timing = lambda key, seconds, work: works.append(work)
    asyncio.run(together(batcher, Recorder(), [request(1, rows=4, width=3, beam=5)]))
    assert works == [4 * 5 * 4]  # 3 pieces and EOS


def test_no_call_holds_more_work_than_its_bound_so_the_export_never_lowers_a_beam():
    # Sources of 255 pieces (256 with EOS) at beam 5: 1280 of work per row, so 6 rows of CALL_WORK.
    per_call = CALL_WORK // (256 * 5)
    recorder = Recorder()
    requests = [request(1, rows=60, width=255), request(2, rows=60, width=255)]
    asyncio.run(together(Batcher(max_batch_size=512, max_wait=0.05), recorder, requests))
    assert per_call == 6 and recorder.calls == [per_call] * 20 and CALL_WORK <= MAX_WORK
    assert CALL_WORK >= 256 * MAX_BEAM_SIZE  # the longest sentence at the largest beam fits one call
    recorder = Recorder()  # and is a call alone
    asyncio.run(
        together(Batcher(max_wait=0.05), recorder, [request(1, rows=3, width=255, beam=MAX_BEAM_SIZE)])
    )
    assert recorder.calls == [1, 1, 1]


def test_calls_of_different_requests_are_merged_up_to_exactly_the_work_of_a_call():
    # Two sentences of 128 pieces (EOS included) at the largest beam: half of CALL_WORK each.
    recorder = Recorder()
    requests = [request(i, width=127, beam=MAX_BEAM_SIZE) for i in (1, 2)]
    asyncio.run(together(Batcher(max_wait=0.05), recorder, requests))
    assert recorder.calls == [2]


def test_a_sentence_with_more_work_than_a_call_still_runs_in_a_call_of_its_own():
    recorder = Recorder()
    batcher = Batcher(max_wait=0.0, deadline=5.0, call_work=10)  # a sentence here is 4 pieces x beam 5
    [answer] = asyncio.run(together(batcher, recorder, [request(1, rows=2)]))
    assert answer["first"].tolist() == [1, 1] and recorder.calls == [1, 1]


def test_a_request_the_export_would_refuse_even_at_beam_1_is_a_400_before_it_is_queued():
    # 513 sentences of 256 pieces (EOS included): above MAX_WORK at beam 1.
    recorder = Recorder()
    [refused] = asyncio.run(
        together(Batcher(max_wait=0.0), recorder, [request(1, rows=513, width=255, beam=1)])
    )
    assert isinstance(refused, ServingError) and refused.status == 400 and recorder.calls == []
    assert str(refused) == f"request too large: sentences x source pieces must be at most {MAX_WORK}"
    [fits] = asyncio.run(together(Batcher(max_wait=0.0), recorder, [request(1, rows=512, width=255, beam=1)]))
    assert fits["first"].tolist() == [1] * 512 and recorder.calls == [CALL_WORK // 256] * 16  # 32 a call
    recorder = Recorder()  # the same rows, short: merged
    asyncio.run(
        together(Batcher(max_batch_size=512, max_wait=0.05), recorder, [request(1, 60), request(2, 60)])
    )
    assert recorder.calls == [120]


def test_a_request_without_sources_is_counted_as_the_longest_sentences_at_the_default_beam():
    recorder = Plain()
    [answer] = asyncio.run(together(Batcher(max_wait=0.0), recorder, [{"x": np.arange(8, dtype=np.int32)}]))
    assert recorder.calls == [CALL_WORK // (MAX_SOURCE_PIECES * DEFAULT_BEAM_SIZE), 2] == [6, 2]
    assert answer["y"].tolist() == list(range(1, 9))


def test_a_text_request_is_refused_only_when_its_pieces_could_pass_what_the_export_takes():
    # SentencePiece may make every character a piece, after one for the word boundary; then EOS. So
    # 1024 sentences of 126 characters are at most MAX_WORK pieces, and 127 characters may be more.
    def texts(characters: int) -> dict:
        return {"sources": np.array([b"a" * characters] * 1024, dtype=object), "beam_size": np.array(1)}

    fits, refused = asyncio.run(together(Batcher(max_wait=0.0), Echo(), [texts(126), texts(127)]))
    assert 1024 * (126 + 2) == MAX_WORK and len(fits["translations"]) == 1024
    assert isinstance(refused, ServingError) and refused.status == 400


def test_a_request_larger_than_a_call_runs_as_several_and_gets_all_its_rows_in_order():
    recorder = Recorder()
    ids = np.arange(30, dtype=np.int32)[:, None] + np.zeros((1, 3), np.int32)  # row i starts with i
    inputs = {
        "source_ids": ids,
        "source_lengths": np.arange(30, dtype=np.int32) % 3 + 1,
        "beam_size": np.array(5),
    }
    batcher = Batcher(max_wait=0.0, call_work=8 * 4 * 5)  # 8 rows of 4 pieces (EOS included) at beam 5
    [answer] = asyncio.run(together(batcher, recorder, [inputs]))
    assert recorder.calls == [8, 8, 8, 6]
    assert answer["first"].tolist() == list(range(30))
    assert answer["lengths"].tolist() == (np.arange(30) % 3 + 1).tolist()


@pytest.mark.parametrize(
    ("rows", "max_batch_size", "call_work", "cut"),
    [
        (20, 4, 1000, [4, 4, 4, 4, 4]),  # max_batch_size bounds a call before its work does
        (10, 64, 70, [3, 3, 3, 1]),  # three sentences of 20 fill 60 of a call's 70; a fourth would not fit
        (3, 64, 10, [1, 1, 1]),  # a sentence heavier than a call runs in a call of its own
    ],
)
def test_the_calls_a_request_is_counted_for_when_admitted_are_the_calls_it_is_cut_into(
    rows, max_batch_size, call_work, cut
):
    recorder = Recorder()
    batcher = Batcher(max_batch_size=max_batch_size, max_wait=0.0, call_work=call_work)
    asyncio.run(together(batcher, recorder, [request(1, rows=rows)]))
    assert recorder.calls == cut
    assert batcher.calls(rows * 20, 20) == len(cut)  # request(): 3 pieces and EOS, at beam 5


def test_a_request_whose_calls_differ_in_width_gets_its_rows_padded_as_one_call_would_pad_them():
    recorder = Pieces()

    async def scenario():  # the worker's steps, one at a time
        batcher = Batcher(call_work=4 * 4 * 5)  # four sentences of 3 pieces and EOS at beam 5
        narrow = asyncio.create_task(batcher.submit(SERVABLE, recorder, request(1, rows=6, width=3)))
        await asyncio.sleep(0)
        await batcher.call(batcher.take())  # its first four rows, 3 pieces wide
        wide = asyncio.create_task(batcher.submit(SERVABLE, recorder, request(2, width=4)))
        await asyncio.sleep(0)
        await batcher.call(batcher.take())  # the wide one and the narrow one's last two rows: 4 wide
        return await narrow, await wide

    narrow, wide = asyncio.run(scenario())
    assert recorder.calls == [4, 3]
    ids = np.pad(request(1, rows=6, width=3)["source_ids"], [(0, 0), (0, 1)])  # padded with 0
    assert narrow["ids"].tolist() == ids.tolist() and wide["ids"].tolist() == [[2, 7, 7, 7]]
    assert narrow["pieces"].tolist() == [[b"1", b"7", b"7", b""]] * 6


def test_of_the_requests_waiting_for_their_first_call_the_one_with_least_work_goes_first():
    # Work: sentences x beam x pieces (EOS included). Each has a beam of its own, so none are merged.
    recorder = Recorder()
    requests = [
        request(1, rows=30, width=1, beam=1),  # 30 x 1 x 2 = 60
        request(2, rows=1, width=3, beam=10),  # 1 x 10 x 4 = 40
        request(3, rows=3, width=3, beam=3),  # 3 x 3 x 4 = 36
    ]
    asyncio.run(together(Batcher(max_wait=0.0), recorder, requests))
    assert recorder.firsts == [[3], [2], [1]]


def test_calls_of_different_requests_take_turns_so_a_small_one_never_waits_behind_a_large_one():
    recorder = Recorder(seconds=0.02)

    async def scenario():
        batcher = Batcher(max_wait=0.0, call_work=4 * 4 * 5)  # 4 rows a call
        worker = asyncio.create_task(batcher.run())
        large = asyncio.create_task(batcher.submit(SERVABLE, recorder, request(1, rows=40)))
        await asyncio.sleep(0.05)  # a few of its ten calls have run
        small = await batcher.submit(SERVABLE, recorder, request(2, beam=1))  # never merged with it
        await large
        worker.cancel()
        return small

    small = asyncio.run(scenario())
    assert small["first"].tolist() == [2]
    assert recorder.firsts.index([2]) <= 5, recorder.firsts  # after the call running, not the ten


def test_turns_go_by_work_done_so_a_request_of_light_sentences_gets_more_calls_than_a_heavy_one():
    # Four sentences a call: 16 of work for the light request (beam 1), 80 for the heavy one (beam 5).
    recorder = Recorder()
    requests = [request(1, rows=24, beam=1), request(2, rows=8, beam=5)]
    asyncio.run(together(Batcher(max_batch_size=4, max_wait=0.0), recorder, requests))
    # After the light one's first call and the heavy one's, four more to catch up; at 80 each, the
    # one with less left.
    assert recorder.firsts == [[1], [2], [1], [1], [1], [1], [1], [2]]


def test_one_call_runs_at_a_time_even_of_a_signature_with_nothing_to_merge():
    recorder = Recorder(seconds=0.3)

    class Scalar:  # no batched input: called as it is, in the same worker
        name, inputs = "scalar", {"n": TensorInfo(tf.int32, (), "n")}

        def __call__(self, inputs: dict) -> dict:
            recorder.calls.append("scalar")
            return {"n": inputs["n"]}

    async def scenario():
        batcher = Batcher(max_wait=0.0)
        worker = asyncio.create_task(batcher.run())
        running = asyncio.create_task(batcher.submit(SERVABLE, recorder, request(1)))
        await asyncio.sleep(0.05)
        await batcher.submit(SERVABLE, Scalar(), {"n": np.array(3)})
        await running
        worker.cancel()

    asyncio.run(scenario())
    assert recorder.calls == [1, "scalar"]


def test_a_request_past_its_deadline_gets_504_its_work_is_not_started_and_the_next_runs():
    recorder = Recorder(seconds=0.2)

    async def scenario():
        batcher = Batcher(max_wait=0.0, deadline=0.3)
        worker = asyncio.create_task(batcher.run())
        answers = await asyncio.gather(
            *(batcher.submit(SERVABLE, recorder, request(i, beam=1 + i)) for i in range(3)),  # three calls
            return_exceptions=True,
        )
        queued = batcher.queued
        recorder.seconds = 0.0
        after = await batcher.submit(SERVABLE, recorder, request(9))
        worker.cancel()
        return answers, queued, after

    answers, queued, after = asyncio.run(scenario())
    assert answers[0]["first"].tolist() == [0]
    late = answers[1:]  # the second ran past the deadline; the third was still queued at it
    assert [(type(e), e.status) for e in late] == [(ServingError, 504)] * 2
    assert "Deadline Exceeded" in str(late[1]) and "0.3 s" in str(late[1])
    assert [2] not in recorder.firsts and queued == 0  # the third never ran, and left the queue
    assert after["first"].tolist() == [9]


def test_a_request_whose_call_outlasts_its_deadline_gets_504_at_the_deadline_not_at_the_calls_end():
    async def scenario():
        began = time.monotonic()
        [late] = await together(Batcher(max_wait=0.0, deadline=0.2), Recorder(seconds=1.5), [request(1)])
        return late, time.monotonic() - began

    late, seconds = asyncio.run(scenario())
    assert isinstance(late, ServingError) and late.status == 504 and seconds < 1.0


def test_a_request_gets_504_30_s_after_it_arrives_by_default_as_in_tensorflow_serving():
    async def scenario():
        batcher = Batcher()
        began = time.monotonic()
        waiting = asyncio.create_task(batcher.submit(SERVABLE, Recorder(), request(1)))
        await asyncio.sleep(0)  # queued; no worker
        batcher.expire(began + 29.5)
        await asyncio.sleep(0)
        still = not waiting.done()
        batcher.expire(time.monotonic() + 30.5)
        with pytest.raises(ServingError) as late:
            await asyncio.wait_for(waiting, 1.0)
        return still, late.value

    still, late = asyncio.run(scenario())
    assert still and late.status == 504 and "within its 30 s deadline" in str(late)


def test_no_call_starts_for_a_request_past_its_deadline_even_before_its_timer_fires():
    recorder = Recorder()

    async def scenario():
        batcher = Batcher(max_wait=0.0, deadline=10.0)
        waiting = asyncio.create_task(batcher.submit(SERVABLE, recorder, request(1)))
        await asyncio.sleep(0)  # queued; no worker yet
        batcher.expire(time.monotonic() + 10.5)  # the worker coming round late, past the deadline
        with pytest.raises(ServingError) as late:
            await asyncio.wait_for(waiting, 1.0)  # at once, not at its timer 10 s on
        return late.value, batcher

    late, batcher = asyncio.run(scenario())
    assert late.status == 504 and not batcher.pending and batcher.queued == 0 and recorder.calls == []


def test_a_request_whose_client_went_away_runs_no_more_calls():
    recorder = Recorder(seconds=0.05)

    async def scenario():
        batcher = Batcher(max_wait=0.0, call_work=4 * 4 * 5)
        worker = asyncio.create_task(batcher.run())
        gone = asyncio.create_task(batcher.submit(SERVABLE, recorder, request(1, rows=40)))
        await asyncio.sleep(0.08)
        gone.cancel()  # what the application does when the client disconnects
        await asyncio.sleep(0.2)
        worker.cancel()
        return batcher

    batcher = asyncio.run(scenario())
    assert len(recorder.calls) <= 3 and batcher.queued == 0 and not batcher.pending


def test_a_request_that_cannot_finish_within_its_deadline_gets_503_at_once_and_the_queue_goes_on():
    recorder = Recorder(seconds=0.05)

    async def scenario():
        batcher = Batcher(max_wait=0.0, deadline=1.0)
        worker = asyncio.create_task(batcher.run())
        # The first call of a key is not timed (it optimises the graph); then one of 1 row and one of
        # 4: 0.05 s a call and 0.05 s for each 20 of work beyond the first row's.
        for rows in (1, 1, 4):
            await batcher.submit(SERVABLE, recorder, request(1, rows=rows))
        queued = asyncio.create_task(batcher.submit(SERVABLE, recorder, request(5, beam=1)))
        await asyncio.sleep(0)
        began = time.monotonic()
        with pytest.raises(ServingError) as shed:  # 64 rows take 3.2 s
            await batcher.submit(SERVABLE, recorder, request(6, rows=64))
        seconds = time.monotonic() - began
        small = await batcher.submit(SERVABLE, recorder, request(7))  # 0.1 s of work: admitted
        answer = await queued
        worker.cancel()
        return shed.value, seconds, small, answer

    shed, seconds, small, answer = asyncio.run(scenario())
    assert shed.status == 503 and "beyond its 1 s deadline" in str(shed) and seconds < 0.05
    assert small["first"].tolist() == [7] and answer["first"].tolist() == [5]


def test_the_time_a_request_would_take_counts_the_fixed_part_of_every_call_it_is_cut_into():
    batcher = timed(Batcher(deadline=2.5, call_work=100), overhead=1.0, per_work=0.0)  # room for two calls
    batcher.admit(2, 100)  # two sentences that each fill a call: two calls
    batcher.admit(8, 25)  # eight of a quarter of a call: two calls of four
    for rows, unit in [(3, 100), (9, 25)]:  # three calls
        with pytest.raises(ServingError) as refused:
            batcher.admit(rows, unit)
        assert refused.value.status == 503 and "about 3.0 s" in str(refused.value)


def test_the_time_a_request_would_take_counts_its_work_at_the_measured_seconds_per_unit():
    batcher = timed(Batcher(deadline=1.0, call_work=100), overhead=0.0, per_work=0.01)
    batcher.admit(3, 25)  # 75 of work: 0.75 s
    with pytest.raises(ServingError) as refused:
        batcher.admit(5, 25)  # 1.25 s
    assert refused.value.status == 503 and "about 1.2 s" in str(refused.value)


def test_the_time_a_request_would_take_counts_the_calls_of_the_queued_ones_that_take_turns_with_it():
    async def scenario():
        batcher = timed(Batcher(deadline=4.5, call_work=100), overhead=1.0, per_work=0.0)
        # Eight sentences of 4 pieces and EOS at beam 5 (25 each) queued: two calls of four.
        queued = asyncio.create_task(batcher.submit(SERVABLE, Recorder(), request(1, rows=8, width=4)))
        await asyncio.sleep(0)
        batcher.admit(8, 25)  # its two calls, and the two of the queued one that take turns with them
        with pytest.raises(ServingError) as refused:
            batcher.admit(9, 25)  # three calls of its own: five
        batcher.take()  # the queued one's first call: only its second is left to share
        batcher.admit(9, 25)  # three calls of its own and one: four
        queued.cancel()
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.status == 503 and "about 5.0 s" in str(refused)


def test_the_time_a_request_would_take_counts_the_work_of_the_queued_ones_that_take_turns_with_it():
    async def scenario():
        batcher = timed(Batcher(deadline=1.0, call_work=100), overhead=0.0, per_work=0.01)
        # Four sentences of 4 pieces and EOS at beam 5 (25 each) queued: 100 of work, 1 s.
        queued = asyncio.create_task(batcher.submit(SERVABLE, Recorder(), request(1, rows=4, width=4)))
        await asyncio.sleep(0)
        batcher.admit(1, 25)  # its 25 and the queued one's next 25 in turn: 0.5 s
        with pytest.raises(ServingError) as refused:
            batcher.admit(3, 25)  # its 75 and as much of the queued one's: 1.5 s
        queued.cancel()
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.status == 503 and "about 1.5 s" in str(refused)


def test_once_there_are_full_calls_the_seconds_per_unit_are_theirs_even_if_they_measured_none():
    batcher = Batcher(call_work=1000)
    batcher.timing(KEY, 60.0, 1000)  # a key's first call: left out
    batcher.timing(KEY, 0.5, 1000)  # a full call, the shortest yet: all of it the fixed part
    batcher.timing(KEY, 1.0, 10)  # a small call that took longer
    assert batcher.seconds_per_work() == 0.0  # not the small call's 0.5 s over 910 of decayed work


def test_the_seconds_per_unit_of_work_are_measured_on_full_calls_and_follow_the_recent_ones():
    batcher = Batcher(call_work=1000)
    batcher.timing(KEY, 60.0, 900)  # a key's first call (it optimises the graph): left out
    assert batcher.seconds_per_work() is None
    batcher.timing(KEY, 0.1, 10)  # the shortest call: the fixed part of every call
    for _ in range(3):  # small calls cost more a unit of work than the full calls of a large request
        batcher.timing(KEY, 0.1 + 0.01 * 100, 100)
    batcher.timing(KEY, 0.1 + 0.001 * 900, 900)  # three sentences of 300 of work: the most a call holds
    assert batcher.seconds_per_work() == pytest.approx(0.001)
    for _ in range(20):  # the model slows down (the machine is shared): the past fades
        batcher.timing(KEY, 0.1 + 0.002 * 900, 900)
    assert batcher.seconds_per_work() == pytest.approx(0.002, rel=0.02)
    batcher.timing(KEY, 0.1 + 0.012 * 900, 900)  # but it outweighs one call: not half the way to 0.012
    assert batcher.seconds_per_work() < 0.007


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


def test_a_request_of_max_queued_examples_is_taken_when_none_wait():
    [answer] = asyncio.run(together(Batcher(max_wait=0.0, max_queued=4), Recorder(), [request(1, rows=4)]))
    assert answer["first"].tolist() == [1] * 4


def test_batched_inputs_of_different_lengths_are_a_400():
    short, long = request(1, rows=2), request(2, rows=2)
    short["source_lengths"], long["source_lengths"] = np.full(1, 3, np.int32), np.full(3, 3, np.int32)
    answers = asyncio.run(together(Batcher(max_wait=0.0), Recorder(), [short, long]))
    assert [(type(a), a.status) for a in answers] == [(ServingError, 400)] * 2
    assert "must have the same number of examples" in str(answers[0])


def test_a_beam_below_1_is_searched_at_1_as_the_export_does():
    requests = [request(1, beam=0), request(2, beam=-3)]
    answers = asyncio.run(together(Batcher(max_wait=0.0), Recorder(), requests))
    assert [a["first"].tolist() for a in answers] == [[1], [2]]


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


def test_a_refusal_without_an_assertion_is_its_first_line_that_is_not_tensorflows_preamble():
    message = (
        "Graph execution error:\n\nDetected at node a/GatherV2 defined at (most recent call last):\n"
        "<stack trace unavailable>\nindices[3,0] = 40 is not in [0, 30)\n\t [[{{node a/GatherV2}}]]"
    )
    error = tf.errors.InvalidArgumentError(None, None, message)
    assert refusal(error) == "indices[3,0] = 40 is not in [0, 30)"


def test_a_sources_width_counts_the_characters_sentencepieces_normalisation_expands():
    # NFKC makes "ﬃ" three letters ("▁", "f", "f", "i" and EOS: 5 pieces with the project's
    # tokenizer), and one Arabic ligature eighteen: counted raw, the bound would be 3 for both.
    sources = {"sources": np.array(["ﬃ".encode(), b"Hund"], dtype=object)}
    assert source_width(sources) == 6  # "Hund": 4 characters, a word boundary and EOS
    assert source_width({"sources": np.array(["ﬃ".encode()], dtype=object)}) == 5
    assert source_width({"sources": np.array(["ﷺ".encode()], dtype=object)}) == 18 + 2
