"""Which event loop the runtime runs on: asyncio's own unless EDGEWISE_EVENT_LOOP asks for uvloop."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from edgewise.runtime import eventloop
from edgewise.runtime.lifecycle.process import StepProcess
from edgewise.runtime.lifecycle.step import resolve_identity


def test_asyncio_is_the_default_and_uvloop_is_used_when_asked_for() -> None:
    # The dev install includes the fast extra, so uvloop is there.
    assert eventloop.choose({}) == "asyncio"
    assert eventloop.choose({"EDGEWISE_EVENT_LOOP": ""}) == "asyncio"
    assert eventloop.choose({"EDGEWISE_EVENT_LOOP": "asyncio"}) == "asyncio"
    assert eventloop.choose({"EDGEWISE_EVENT_LOOP": "auto"}) == "uvloop"
    assert eventloop.choose({"EDGEWISE_EVENT_LOOP": " UVLOOP "}) == "uvloop"


def test_without_uvloop_auto_is_asyncio_and_asking_for_uvloop_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` raise ImportError

    assert eventloop.choose({"EDGEWISE_EVENT_LOOP": "auto"}) == "asyncio"
    with pytest.raises(ValueError, match=r"EDGEWISE_EVENT_LOOP: uvloop was asked for but is not installed"):
        eventloop.choose({"EDGEWISE_EVENT_LOOP": "uvloop"})


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(
        ValueError, match=r"EDGEWISE_EVENT_LOOP: expected auto, asyncio or uvloop, got 'trio'"
    ):
        eventloop.choose({"EDGEWISE_EVENT_LOOP": "trio"})


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_run_runs_the_coroutine_on_the_chosen_loop(loop: eventloop.EventLoopName) -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__.partition(".")[0]

    assert eventloop.run(which(), loop=loop) == loop


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_step_runs_as_another_user_on_either_loop(loop: eventloop.EventLoopName) -> None:
    # uvloop has no user/group/extra_groups for subprocesses: there the child switches users itself.
    nobody = pwd.getpwnam("nobody")
    lines: list[str] = []
    # The step's working directory is the user's own, as the runtime makes it (uvloop switches users first).
    work = Path(tempfile.mkdtemp(prefix="ew-loop-", dir="/tmp"))
    os.chown(work, nobody.pw_uid, nobody.pw_gid)

    async def run_id() -> None:
        exited = asyncio.Event()
        step = await StepProcess.spawn(
            "Run",
            "id -u; id -g",
            cwd=work,
            env={"PATH": os.defpath},
            identity=resolve_identity("nobody"),
            on_line=lambda _stderr, text: lines.append(text),
            on_exit=exited.set,
        )
        await asyncio.wait_for(exited.wait(), 10)
        await step.drain(10)
        await step.terminate(1)

    try:
        eventloop.run(run_id(), loop=loop)
    finally:
        shutil.rmtree(work)

    assert lines == [str(nobody.pw_uid), str(nobody.pw_gid)]
