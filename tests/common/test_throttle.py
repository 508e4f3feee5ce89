"""The shared request throttle, on a fake clock: nothing here really sleeps."""

from __future__ import annotations

import threading

import pytest

from services.common.throttle import Throttle, ThrottleRegistry, interval_of


class FakeClock:
    """A monotonic clock that moves only when slept on (or by ``advance``); every sleep
    is recorded. Thread-safe."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


class FrozenClock(FakeClock):
    """Sleeping records the wait and moves nothing: each caller's wait is its slot."""

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)


def test_the_first_call_goes_at_once_and_the_next_waits_the_interval() -> None:
    clock = FakeClock()
    throttle = Throttle(0.5, monotonic=clock.monotonic, sleep=clock.sleep)
    assert [throttle.wait(), throttle.wait(), throttle.wait()] == [0.0, 0.5, 0.5]
    assert clock.sleeps == [0.5, 0.5]


def test_time_spent_since_the_last_call_counts_toward_the_interval() -> None:
    clock = FakeClock()
    throttle = Throttle(1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    throttle.wait()
    clock.advance(0.3)  # the request took 0.3 s
    assert throttle.wait() == pytest.approx(0.7)
    clock.advance(2.5)  # long after the slot
    assert throttle.wait() == 0.0
    assert clock.sleeps == [pytest.approx(0.7)]


def test_per_second_is_the_inverse_interval_and_zero_interval_never_waits() -> None:
    clock = FakeClock()
    assert Throttle.per_second(4, monotonic=clock.monotonic, sleep=clock.sleep).interval == 0.25
    unpaced = Throttle(0, monotonic=clock.monotonic, sleep=clock.sleep)
    assert [unpaced.wait() for _ in range(3)] == [0.0, 0.0, 0.0] and clock.sleeps == []


@pytest.mark.parametrize("interval", [-1.0, float("nan")])
def test_a_negative_interval_is_refused_saying_what_is_expected(interval: float) -> None:
    with pytest.raises(ValueError, match="seconds >= 0"):
        Throttle(interval)


@pytest.mark.parametrize("rate", [0.0, -2.0])
def test_a_rate_that_is_not_above_zero_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="above 0; got"):
        interval_of(rate)


def test_callers_on_many_threads_each_get_their_own_slot() -> None:
    clock = FrozenClock()
    throttle = Throttle(0.25, monotonic=clock.monotonic, sleep=clock.sleep)
    threads, calls = 8, 50
    start = threading.Barrier(threads)
    waits: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        start.wait()
        mine = [throttle.wait() for _ in range(calls)]
        with lock:
            waits.extend(mine)

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    # the clock never moved: the n-th slot handed out is n intervals away, each given once
    assert sorted(waits) == [n * 0.25 for n in range(threads * calls)]


def test_the_registry_gives_one_throttle_per_name() -> None:
    clock = FakeClock()
    registry = ThrottleRegistry(monotonic=clock.monotonic, sleep=clock.sleep)
    kis = registry.get("kis", 0.5)
    assert registry.get("kis", 0.5) is kis
    pykrx = registry.get("pykrx", 1.0)
    assert pykrx is not kis
    assert [kis.wait(), registry.get("kis", 0.5).wait()] == [0.0, 0.5]  # one pace for both holders
    assert pykrx.wait() == 0.0  # another name, another pace


def test_asking_the_registry_with_another_interval_changes_it() -> None:
    clock = FakeClock()
    registry = ThrottleRegistry(monotonic=clock.monotonic, sleep=clock.sleep)
    throttle = registry.get("kis", 0.5)
    assert registry.get("kis", 0.05) is throttle and throttle.interval == 0.05
