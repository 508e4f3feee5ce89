"""SharedReads: one computation per read and second, shared by the clients asking;
a change clears it. Driven as ASGI with a counting app and a hand-moved clock."""

from __future__ import annotations

import asyncio
from typing import Any

from services.orchestrator.api.shared_reads import SharedReads


class CountingApp:
    """An ASGI app answering each request with the number of requests it has computed
    (status ``status``), after ``delay`` seconds; a change waits for ``release``."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay, self.computed = status, delay, 0
        self.release: asyncio.Event | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.computed += 1
        answer = str(self.computed).encode()
        if scope["method"] != "GET" and self.release is not None:
            await self.release.wait()
        await asyncio.sleep(self.delay)
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def request(app: Any, path: str, method: str = "GET", query: bytes = b"") -> tuple[int, str]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app({"type": "http", "method": method, "path": path, "query_string": query, "headers": []}, receive, send)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:]).decode()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_concurrent_askers_of_one_read_share_one_computation() -> None:
    inner = CountingApp(delay=0.05)
    shared = SharedReads(inner, seconds=1.0, clock=Clock())

    async def fifty() -> list[tuple[int, str]]:
        return await asyncio.gather(*(request(shared, "/api/status") for _ in range(50)))

    assert run(fifty()) == [(200, "1")] * 50
    assert inner.computed == 1


def test_an_answer_is_shared_for_its_seconds_then_computed_again() -> None:
    inner, clock = CountingApp(), Clock()
    shared = SharedReads(inner, seconds=1.0, clock=clock)

    async def scenario() -> list[str]:
        answers = [(await request(shared, "/metrics"))[1]]
        clock.now += 0.99
        answers.append((await request(shared, "/metrics"))[1])
        clock.now += 0.02
        answers.append((await request(shared, "/metrics"))[1])
        return answers

    assert run(scenario()) == ["1", "1", "2"]


def test_each_url_has_its_own_answer_and_other_paths_are_never_shared() -> None:
    inner = CountingApp()
    shared = SharedReads(inner, seconds=1.0, clock=Clock())

    async def scenario() -> list[str]:
        return [(await request(shared, path, query=query))[1] for path, query in [
            ("/api/runs", b"limit=5"), ("/api/runs", b"limit=6"), ("/api/runs", b"limit=5"),
            ("/health", b""), ("/health", b""), ("/", b""), ("/", b"")]]

    assert run(scenario()) == ["1", "2", "1", "3", "4", "5", "6"]


def test_a_change_clears_every_answer() -> None:
    inner = CountingApp()
    shared = SharedReads(inner, seconds=60.0, clock=Clock())

    async def scenario() -> list[str]:
        before = (await request(shared, "/api/status"))[1]
        await request(shared, "/api/halt", method="POST")
        after = (await request(shared, "/api/status"))[1]
        return [before, after, (await request(shared, "/api/status"))[1]]

    assert run(scenario()) == ["1", "3", "3"]


def test_an_answer_computed_while_a_change_runs_is_not_kept() -> None:
    inner = CountingApp(delay=0.01)
    shared = SharedReads(inner, seconds=60.0, clock=Clock())

    async def scenario() -> list[str]:
        inner.release = asyncio.Event()
        change = asyncio.create_task(request(shared, "/api/halt", method="POST"))
        await asyncio.sleep(0)  # the change has started
        during = (await request(shared, "/api/status"))[1]  # computed while the change runs
        inner.release.set()
        await change
        return [during, (await request(shared, "/api/status"))[1]]

    during, after = run(scenario())
    assert during != after  # the answer read during the change was not served after it


def test_an_answer_other_than_200_is_not_kept() -> None:
    inner = CountingApp(status=503)
    shared = SharedReads(inner, seconds=60.0, clock=Clock())

    async def scenario() -> list[tuple[int, str]]:
        return [await request(shared, "/api/status") for _ in range(3)]

    assert run(scenario()) == [(503, "1"), (503, "2"), (503, "3")]


def test_zero_seconds_computes_every_read() -> None:
    inner = CountingApp()
    shared = SharedReads(inner, seconds=0.0, clock=Clock())

    async def scenario() -> list[str]:
        return [(await request(shared, "/api/status"))[1] for _ in range(3)]

    assert run(scenario()) == ["1", "2", "3"]


def test_an_error_is_shared_with_the_askers_already_waiting_but_not_kept() -> None:
    inner = CountingApp(status=503, delay=0.05)
    shared = SharedReads(inner, seconds=60.0, clock=Clock())

    async def scenario() -> tuple[list[tuple[int, str]], tuple[int, str]]:
        together = await asyncio.gather(*(request(shared, "/api/status") for _ in range(20)))
        return together, await request(shared, "/api/status")

    together, later = run(scenario())
    assert together == [(503, "1")] * 20 and later == (503, "2")


def test_head_and_options_are_not_changes() -> None:
    inner = CountingApp()
    shared = SharedReads(inner, seconds=60.0, clock=Clock())

    async def scenario() -> list[str]:
        first = (await request(shared, "/api/status"))[1]
        await request(shared, "/health", method="HEAD")
        await request(shared, "/api/status", method="OPTIONS")
        return [first, (await request(shared, "/api/status"))[1]]

    assert run(scenario()) == ["1", "1"]
