"""No code path can trade around the risk gate: ``Broker.place_order`` is called in
two places only: ``order_book.submit``, which asks the gate first and needs one, and
``live_orders`` sending the live orders ``submit`` recorded."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from services.trading_engine import order_book

SERVICES = Path(__file__).resolve().parents[2] / "services"


def calls_of(method: str) -> list[str]:
    """``file:function`` of every call of ``<anything>.method(...)`` under services/."""
    found = []
    for path in sorted(SERVICES.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == method):
                    found.append(f"{path.relative_to(SERVICES).as_posix()}:{function.name}")
    return sorted(set(found))


def test_orders_reach_a_broker_only_through_submit() -> None:
    assert calls_of("place_order") == ["trading_engine/live_orders.py:send", "trading_engine/order_book.py:submit"]


def test_submit_cannot_be_called_without_a_gate() -> None:
    gate = inspect.signature(order_book.submit).parameters["gate"]
    assert gate.default is inspect.Parameter.empty
