"""The worker's circuit breaker as a state machine: a fake clock and fake calls, no sleeping."""

from __future__ import annotations

import asyncio
import logging

import pytest

from omniq.errors import BackendError, LeaseLostError
from omniq.worker._breaker import BreakerState, CircuitBreaker, CircuitOpenError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Store:
    """A fake backend call that fails while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise BackendError("injected: database is locked")
        return "ok"


def make(
    threshold: int = 3, max_backoff: float = 30.0, rng: float = 0.0
) -> tuple[CircuitBreaker, FakeClock, list[str]]:
    clock = FakeClock()
    closed: list[str] = []
    breaker = CircuitBreaker(
        failure_threshold=threshold,
        max_backoff=max_backoff,
        name="w1",
        clock=clock,
        rng=lambda: rng,
        on_close=lambda: closed.append("closed"),
    )
    return breaker, clock, closed


async def fail_times(breaker: CircuitBreaker, store: Store, n: int) -> None:
    for _ in range(n):
        with pytest.raises(BackendError):
            await breaker.call(store)


async def test_opens_after_threshold_consecutive_failures_and_refuses_calls() -> None:
    breaker, _, _ = make(threshold=3)
    store = Store()
    store.down = True
    await fail_times(breaker, store, 2)
    assert (breaker.state, breaker.failures) == (BreakerState.CLOSED, 2)
    await fail_times(breaker, store, 1)
    assert (breaker.state, breaker.opened) == (BreakerState.OPEN, 1)
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(store)
    assert store.calls == 3  # refused without touching the store
    assert refused.value.retry_in == pytest.approx(0.5)
    assert breaker.retry_in() == pytest.approx(0.5)


async def test_a_success_resets_the_count() -> None:
    breaker, _, _ = make(threshold=3)
    store = Store()
    store.down = True
    await fail_times(breaker, store, 2)
    store.down = False
    assert await breaker.call(store) == "ok"
    store.down = True
    await fail_times(breaker, store, 2)
    assert breaker.state is BreakerState.CLOSED


async def test_store_answers_are_not_failures() -> None:
    breaker, _, _ = make(threshold=1)

    async def lost() -> None:
        raise LeaseLostError(["t1"])

    async def refused() -> None:
        raise ValueError("bad outcome")

    for call in (lost, refused):
        with pytest.raises((LeaseLostError, ValueError)):
            await breaker.call(call)
    assert (breaker.state, breaker.failures) == (BreakerState.CLOSED, 0)


async def test_half_open_lets_one_probe_through_and_its_success_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="omniq.worker")
    breaker, clock, closed = make(threshold=1)
    store = Store()
    store.down = True
    await fail_times(breaker, store, 1)
    clock.now += 0.49
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.02
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_in() == 0

    store.down = False
    gate = asyncio.Event()

    async def slow_probe() -> str:
        await gate.wait()
        return await store()

    probe = asyncio.create_task(breaker.call(slow_probe))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):  # only one probe at a time
        await breaker.call(store)
    gate.set()
    assert await probe == "ok"
    assert (breaker.state, breaker.failures, closed) == (BreakerState.CLOSED, 0, ["closed"])
    assert await breaker.call(store) == "ok"
    messages = [r.getMessage() for r in caplog.records]
    assert any("circuit breaker open" in m for m in messages)
    assert any("circuit breaker closed" in m for m in messages)


async def test_failed_probes_double_the_backoff_up_to_the_maximum() -> None:
    breaker, clock, closed = make(threshold=2, max_backoff=3.0)
    store = Store()
    store.down = True
    await fail_times(breaker, store, 2)
    waits = []
    for _ in range(5):
        waits.append(breaker.retry_in())
        clock.now += breaker.retry_in()
        assert breaker.state is BreakerState.HALF_OPEN
        await fail_times(breaker, store, 1)  # the probe fails: open again
        assert breaker.state is BreakerState.OPEN
    assert waits == pytest.approx([0.5, 1.0, 2.0, 3.0, 3.0])
    assert (breaker.opened, closed) == (1, [])  # one outage, not five
    clock.now += breaker.retry_in()
    store.down = False
    await breaker.call(store)
    assert breaker.state is BreakerState.CLOSED
    store.down = True  # a new outage starts again from 0.5 s
    await fail_times(breaker, store, 2)
    assert (breaker.retry_in(), breaker.opened) == (pytest.approx(0.5), 2)


async def test_jitter_shortens_the_backoff_by_up_to_a_fifth() -> None:
    breaker, _, _ = make(threshold=1, rng=0.5)
    store = Store()
    store.down = True
    await fail_times(breaker, store, 1)
    assert breaker.retry_in() == pytest.approx(0.5 * 0.9)


async def test_a_late_success_of_an_older_call_closes_and_a_late_failure_is_ignored() -> None:
    breaker, _, closed = make(threshold=1)
    store = Store()
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "late"

    older = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    store.down = True
    await fail_times(breaker, store, 1)
    assert breaker.state is BreakerState.OPEN
    gate.set()
    assert await older == "late"  # the store answered after all
    assert (breaker.state, closed) == (BreakerState.CLOSED, ["closed"])


async def test_force_calls_even_when_open_and_a_cancelled_probe_frees_the_slot() -> None:
    breaker, clock, _ = make(threshold=1)
    store = Store()
    store.down = True
    await fail_times(breaker, store, 1)
    with pytest.raises(BackendError):
        await breaker.call(store, force=True)
    assert store.calls == 2
    clock.now += 1.0

    async def hang() -> None:
        await asyncio.Event().wait()

    probe = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    store.down = False
    assert await breaker.call(store) == "ok"  # another caller may probe
    assert breaker.state is BreakerState.CLOSED


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(max_backoff=0)
