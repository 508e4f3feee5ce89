"""The shared request throttle, on a fake clock: nothing here really sleeps."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from services.common.throttle import FAR_SLOTS, SharedThrottle, Throttle, ThrottleRegistry, interval_of
from tests.conftest import subprocess_env


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


# --- paced across processes (one file) ----------------------------------------------------------


def shared(path: Path, clock: FakeClock, interval: float = 0.5) -> SharedThrottle:
    """A process's view of the pace kept in ``path``, on ``clock`` (the machine's monotonic clock)."""
    return SharedThrottle(path, interval, fallback=Throttle(interval, monotonic=clock.monotonic, sleep=clock.sleep),
                          clock=clock.monotonic, sleep=clock.sleep)


def test_throttles_on_one_file_share_its_slots_as_two_processes_would(tmp_path: Path) -> None:
    clock = FrozenClock(1_000.0)
    live, paper = shared(tmp_path / "pace", clock), shared(tmp_path / "pace", clock)
    waits = [throttle.wait() for throttle in (live, paper, live, paper)]
    assert waits == [0.0, 0.5, 1.0, 1.5]


def test_a_slot_already_past_is_not_waited_for(tmp_path: Path) -> None:
    clock = FakeClock(1_000.0)
    first, second = shared(tmp_path / "pace", clock), shared(tmp_path / "pace", clock)
    assert first.wait() == 0.0
    clock.advance(2.0)
    assert second.wait() == 0.0 and clock.sleeps == []


@pytest.mark.parametrize("stored", [b"", b"not a time", b"nan", b"inf", str(1_000.0 + FAR_SLOTS + 1).encode()])
def test_an_unreadable_or_implausibly_far_slot_is_not_waited_for(tmp_path: Path, stored: bytes) -> None:
    (tmp_path / "pace").write_bytes(stored)  # a far slot: a file from before a reboot
    clock = FrozenClock(1_000.0)
    throttle = shared(tmp_path / "pace", clock)
    assert [throttle.wait(), throttle.wait()] == [0.0, 0.5]


def test_a_long_queue_at_a_low_rate_is_still_paced(tmp_path: Path) -> None:
    clock = FrozenClock(1_000.0)
    throttle = shared(tmp_path / "pace", clock, interval=10.0)  # 0.1 requests a second
    assert [throttle.wait() for _ in range(13)] == [10.0 * n for n in range(13)]


def test_where_the_file_cannot_be_used_the_process_paces_alone_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "pace").mkdir()  # a directory where the file should be
    clock = FrozenClock(1_000.0)
    throttle, next_run = shared(tmp_path / "pace", clock), shared(tmp_path / "pace", clock)
    with caplog.at_level(logging.WARNING, logger="services.common.throttle"):
        assert [throttle.wait(), throttle.wait(), next_run.wait()] == [0.0, 0.5, 0.0]  # each its own fallback
    assert [record.getMessage() for record in caplog.records] == [
        f"cannot pace through {tmp_path / 'pace'} (Is a directory); pacing this process alone"]


TAKE_SLOTS = """
import sys
from pathlib import Path
from services.common.throttle import SharedThrottle, Throttle
throttle = SharedThrottle(Path(sys.argv[1]), 0.25, fallback=Throttle(0.25), clock=lambda: 1000.0,
                          sleep=lambda seconds: None)
print(" ".join(repr(throttle.wait()) for _ in range(int(sys.argv[2]))))
"""


def test_processes_on_one_file_each_get_their_own_slots(tmp_path: Path) -> None:
    processes, calls = 4, 25
    started = [subprocess.Popen([sys.executable, "-c", TAKE_SLOTS, str(tmp_path / "pace"), str(calls)],
                                stdout=subprocess.PIPE, text=True, env=subprocess_env(),
                                cwd=Path(__file__).resolve().parents[2]) for _ in range(processes)]
    waits = [float(wait) for process in started for wait in process.communicate(timeout=60)[0].split()]
    # the clock stands still: the n-th slot handed out is n intervals away, each given once
    assert sorted(waits) == [n * 0.25 for n in range(processes * calls)]
