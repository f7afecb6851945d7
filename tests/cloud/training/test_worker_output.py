"""How the training worker reads a job's output: JSON lines in any chunking, lines over 1 MiB skipped, and a
leaderboard kept best first and bounded."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.cloud.training.worker import LINE_MAX_BYTES, MAX_CANDIDATES, _json_lines, _Progress

EVENTS = st.lists(
    st.one_of(
        st.builds(lambda text: {"event": "phase", "message": text}, st.text(max_size=20)),
        st.builds(
            lambda score: {"event": "candidate", "candidate": {"learner": "rf", "score": score}},
            st.floats(-1, 1),
        ),
    ),
    max_size=8,
)


def read(data: bytes, cuts: list[int]) -> list[object]:
    """The events _json_lines gives for ``data`` arriving in pieces cut at ``cuts``."""

    async def scenario() -> list[object]:
        stream = asyncio.StreamReader()
        start = 0
        for cut in [*sorted(cuts), len(data)]:
            stream.feed_data(data[start:cut])
            start = max(start, cut)
        stream.feed_eof()
        events: list[object] = []
        await _json_lines(stream, events.append)
        return events

    return asyncio.run(scenario())


@settings(max_examples=25, deadline=None)
@given(events=EVENTS, cuts=st.lists(st.integers(0, 2000), max_size=5), noise=st.binary(max_size=30))
def test_every_json_line_is_read_whatever_the_chunks(
    events: list[object], cuts: list[int], noise: bytes
) -> None:
    lines = [json.dumps(event).encode() for event in events]
    data = b"\n".join([noise.replace(b"\n", b""), *lines, b"{not json"]) + b"\n"
    parsed = read(data, cuts)
    assert [event for event in parsed if event in events] == events


def test_a_line_over_the_limit_is_skipped_and_the_next_ones_are_read() -> None:
    huge = json.dumps({"event": "phase", "message": "x" * LINE_MAX_BYTES}).encode()
    data = b'{"event":"phase","message":"a"}\n' + huge + b'\n{"event":"phase","message":"b"}\n' + huge
    assert read(data, [100, 70_000, LINE_MAX_BYTES]) == [
        {"event": "phase", "message": "a"},
        {"event": "phase", "message": "b"},
    ]


def test_the_leaderboard_keeps_the_best_candidates_and_a_measured_report_replaces_the_first() -> None:
    progress = _Progress()
    for index in range(3 * MAX_CANDIDATES):
        progress.take(
            {"event": "candidate", "candidate": {"learner": "rf", "params": {"n": index}, "score": index}}
        )
    progress.take(
        {
            "event": "candidate",
            "candidate": {"learner": "rf", "params": {"n": 2999}, "score": 2999, "sizeBytes": 10},
        }
    )
    progress.take({"event": "failed", "reason": "out of time"})
    board = progress.leaderboard()
    assert len(board) == MAX_CANDIDATES
    assert [row["score"] for row in board[:2]] == [2999, 2998]
    assert board[0]["sizeBytes"] == 10
    assert progress.failure == "out of time"
