"""Acting on a signal (:mod:`ftbridge.signalsafe`): the callback must run however the main
thread is caught: holding the lock the callback needs, or asleep while the kernel delivered the
signal to another thread. Each case runs in a child process, so that a callback that never runs
hangs the child, not the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

BOUND = 120  # seconds: a bound for a child that hangs, not a measure of speed


def child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(p: subprocess.Popen[str], what: str) -> str:
    try:
        out, err = p.communicate(timeout=BOUND)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(what)
    assert p.returncode == 0, err
    return out


def test_the_callback_runs_while_the_main_thread_holds_the_lock_it_needs() -> None:
    """Setting the stop event inside a handler, while the main thread was inside ``Event.wait``
    holding the event's lock, hung an oVirt lab asked to stop with Ctrl-C."""
    p = child(
        """
        import signal, threading
        from ftbridge.signalsafe import set_on_signals

        stop = threading.Event()
        set_on_signals([signal.SIGUSR1], stop)
        with stop._cond:  # as Event.wait holds it before it lets go
            signal.raise_signal(signal.SIGUSR1)  # the Python-level handler runs here
            print("the handler returned", flush=True)
        assert stop.wait(120), "the event was never set"
        print("set", flush=True)
        """
    )
    out = finish(p, "the signal handler blocked on a lock its own thread held")
    assert out.splitlines() == ["the handler returned", "set"]


def test_the_callback_runs_when_another_thread_got_the_signal_and_the_main_one_sleeps() -> None:
    """The kernel may hand a process's signal to any of its threads. Python-level handlers run
    in the main thread only, once it runs Python again: asleep in a queue's ``get()`` (an
    apply waiting for its next action to end), it never did, and SIGTERM went unanswered."""
    p = child(
        """
        import os, queue, signal, threading
        from ftbridge.signalsafe import on_signals

        answers = queue.SimpleQueue()
        on_signals([signal.SIGUSR1], answers.put)

        def other() -> None:  # woken by the test once the main thread sleeps
            os.read(0, 1)
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # to this thread alone

        threading.Thread(target=other, daemon=True).start()
        print("ready", flush=True)
        print("answered", answers.get() == signal.SIGUSR1, flush=True)  # sleeps until answered
        """
    )
    assert p.stdout is not None and p.stdin is not None
    assert p.stdout.readline() == "ready\n"
    # synchronise on the main thread's state, not on time: asleep in a futex wait (the other
    # threads sit in reads, so nothing else holds the interpreter lock it could be waiting for)
    wchan = Path(f"/proc/{p.pid}/task/{p.pid}/wchan")
    deadline = time.monotonic() + BOUND  # a bound for a broken run, not a measure of speed
    while "futex" not in wchan.read_text():
        assert p.poll() is None and time.monotonic() < deadline, "the child's main thread never slept"
        time.sleep(0.01)
    p.stdin.write("x")
    p.stdin.flush()
    out = finish(p, "the signal went to another thread and nothing answered it while the main one slept")
    assert out.splitlines() == ["answered True"]


def test_restore_puts_back_the_handlers_and_callbacks_it_replaced() -> None:
    p = child(
        """
        import signal, threading
        from ftbridge.signalsafe import on_signals

        seen = []
        done = threading.Event()
        mine = lambda *_: None
        signal.signal(signal.SIGUSR2, mine)
        outer = on_signals([signal.SIGUSR1], lambda s: (seen.append("outer"), done.set()))
        inner = on_signals([signal.SIGUSR1, signal.SIGUSR2], lambda s: seen.append("inner"))
        inner.restore()
        print(signal.getsignal(signal.SIGUSR2) is mine, flush=True)
        signal.raise_signal(signal.SIGUSR2)  # answered by `mine` alone now
        signal.raise_signal(signal.SIGUSR1)  # by the outer callback again
        assert done.wait(120)
        print(seen, flush=True)
        """
    )
    out = finish(p, "the outer callback never ran after the inner one was taken back")
    assert out.splitlines() == ["True", "['outer']"]
