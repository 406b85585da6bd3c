"""The writer thread's results reach the event loop in one wake-up per batch (bot/handoff.py), with each
caller's own result or error, and a caller that stops waiting never cancels the write it asked for."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from bot.handoff import Handoff, arrival


class Counted(Handoff):
    """A Handoff that counts its deliveries (loop wake-ups)."""

    delivered = 0

    def _deliver(self) -> None:
        self.delivered += 1
        super()._deliver()


def _resolve_from_a_thread(futures: list[Future[int]], error_at: int | None = None) -> None:
    """Resolve them all from another thread while the loop is held, as the writer does after a commit."""
    def run() -> None:
        for i, f in enumerate(futures):
            if i == error_at:
                f.set_exception(ValueError(f"write {i} failed"))
            else:
                f.set_result(i)
    t = threading.Thread(target=run)
    t.start()
    t.join()


async def test_a_batch_of_results_is_one_wake_up_with_each_callers_own_value() -> None:
    hand = Counted(asyncio.get_running_loop())
    futures: list[Future[int]] = [Future() for _ in range(50)]
    waiting = [hand.wait(f) for f in futures]
    _resolve_from_a_thread(futures, error_at=7)
    got = await asyncio.gather(*waiting, return_exceptions=True)
    assert [g for i, g in enumerate(got) if i != 7] == [i for i in range(50) if i != 7]
    assert isinstance(got[7], ValueError) and str(got[7]) == "write 7 failed"
    assert hand.delivered == 1


async def test_a_later_batch_is_delivered_too() -> None:
    hand = Counted(asyncio.get_running_loop())
    for batch in range(3):
        futures: list[Future[int]] = [Future() for _ in range(5)]
        waiting = [hand.wait(f) for f in futures]
        _resolve_from_a_thread(futures)
        assert await asyncio.gather(*waiting) == list(range(5))
        assert hand.delivered == batch + 1


async def test_a_caller_that_stops_waiting_does_not_cancel_the_write() -> None:
    written: Future[int] = Future()
    waiter = asyncio.ensure_future(arrival(written))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not written.cancelled()
    assert written.set_running_or_notify_cancel()  # the writer can still take it and commit it
    _resolve_from_a_thread([written])
    await asyncio.sleep(0.01)  # the delivery skips the cancelled waiter without an error
    assert written.result() == 0


async def test_an_already_finished_write_is_delivered() -> None:
    done: Future[int] = Future()
    done.set_result(42)
    assert await arrival(done) == 42


def test_a_closed_loop_does_not_break_the_writer_thread(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    hand = Handoff(loop)
    written: Future[int] = Future()
    hand.wait(written)
    loop.close()
    written.set_result(0)  # a callback that raised would be logged by concurrent.futures
    assert written.result() == 0
    assert not [r for r in caplog.records if "exception calling callback" in r.getMessage()]
