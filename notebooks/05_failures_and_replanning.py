# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Failures: retries, replanning, and compensation
#
# Recovering from errors: retry a step that fails, and when a workflow cannot finish,
# undo what it did (the *saga* pattern: each step names a compensating
# action, run in reverse order). tooldag adds a step in between: a failed run goes back
# to the model with what succeeded and what failed, and the new plan reuses the
# completed steps instead of running them again.
#
# The example is an order workflow: reserve stock, charge the payment, ship.

# %%
from collections.abc import Callable
from typing import Any

from tooldag.testing import FakeLLMServer, Rule


def order_plan(city: str, carrier: str) -> dict[str, Any]:
    return {
        "goal": f"Order 2 KB-42 keyboards and ship them to {city}",
        "steps": [
            {"id": "reserve", "tool": "reserve_items", "args": {"sku": "KB-42", "quantity": 2}},
            {
                "id": "charge",
                "tool": "process_payment",
                "args": {"amount": 179.80, "reservation_id": "$reserve.reservation_id"},
            },
            {
                "id": "ship",
                "tool": "create_shipment",
                "args": {"order_id": "$charge.order_id", "city": city, "carrier": carrier},
            },
        ],
        "answer": "Order ${charge.order_id} ships with ${ship.carrier} in ${ship.eta_days} days.",
    }


def first_then(
    first: dict[str, Any], replanned: dict[str, Any]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Answer a goal's first request with `first`, and a replan request with `replanned`."""

    def reply(request: dict[str, Any]) -> dict[str, Any]:
        prompt = request["messages"][-1]["content"]
        # tooldag's replan prompt says "The plan for this goal was run and did not succeed."
        return replanned if "did not succeed" in prompt else first

    return reply


STOCK_PLAN = {
    "goal": "How many KB-42 keyboards are in stock?",
    "steps": [{"id": "stock", "tool": "check_stock", "args": {"sku": "KB-42"}}],
    "answer": "${stock.units} units of ${stock.sku} in stock.",
}

# A rule answers every request whose goal contains its text.
server = FakeLLMServer(
    rules=[
        Rule("in stock", STOCK_PLAN),
        # The first plan ships with FastShip; the replan switches to SlowPost.
        Rule(
            "Berlin", first_then(order_plan("Berlin", "FastShip"), order_plan("Berlin", "SlowPost"))
        ),
        Rule(
            "Atlantis",
            first_then(order_plan("Atlantis", "FastShip"), order_plan("Atlantis", "SlowPost")),
        ),
    ]
).start()
llm = server.client()

# %% [markdown]
# ### Using a real model instead
#
# Export `OPENAI_API_KEY` (or `OPENAI_BASE_URL` and `TOOLDAG_MODEL`, for any other
# OpenAI-compatible server) before starting Jupyter, then set `USE_REAL_MODEL = True` below
# (`01_quickstart` shows the variables). A real model writes its own plans, so step names
# and numbers will differ from the scripted ones, which the `assert`s check.

# %%
USE_REAL_MODEL = False  # True: plan with OPENAI_API_KEY / OPENAI_BASE_URL / TOOLDAG_MODEL

if USE_REAL_MODEL:
    from tooldag.llm.client import LLMClient

    server.stop()
    llm = LLMClient.from_env()
llm

# %% [markdown]
# ## The shop's tools
#
# Each tool with side effects names its undo with `Compensation`: `$output.x` reads the
# compensated step's own output. `LEDGER` records every side effect, as the shop's
# database would see them, and `CALLS` counts calls. Each call takes 40 ms, as a real
# API would, so that the chart at the end has something to show.

# %%
import time
from collections import Counter
from typing import Literal

from typing_extensions import TypedDict

from tooldag import (
    Compensation,
    PermanentToolError,
    RetryPolicy,
    ToolRegistry,
    TransientToolError,
    tool,
)

LEDGER: list[str] = []
CALLS: Counter[str] = Counter()
API_SECONDS = 0.04


class Stock(TypedDict):
    sku: str
    units: int


class Reservation(TypedDict):
    reservation_id: str


class Payment(TypedDict):
    transaction_id: str
    order_id: str


class Shipment(TypedDict):
    shipment_id: str
    carrier: str
    eta_days: int


FLAKY = {"failures_left": 2}


@tool(side_effects=False, retry=RetryPolicy(attempts=4, initial_backoff=0.05, max_backoff=0.2))
async def check_stock(sku: str) -> Stock:
    """Units in stock for a product (the inventory API times out now and then)."""
    CALLS["check_stock"] += 1
    if FLAKY["failures_left"] > 0:
        FLAKY["failures_left"] -= 1
        raise TransientToolError("the inventory API timed out")
    return {"sku": sku, "units": 42}


@tool(compensate=Compensation("release_reservation", {"reservation_id": "$output.reservation_id"}))
def reserve_items(sku: str, quantity: int) -> Reservation:
    """Reserve stock for an order."""
    CALLS["reserve_items"] += 1
    time.sleep(API_SECONDS)
    LEDGER.append(f"reserved {quantity} x {sku}")
    return {"reservation_id": f"R-{sku}-{quantity}"}


@tool
def release_reservation(reservation_id: str) -> dict[str, str]:
    """Give reserved stock back (undoes reserve_items)."""
    time.sleep(API_SECONDS)
    LEDGER.append(f"released {reservation_id}")
    return {"released": reservation_id}


@tool(compensate=Compensation("refund_payment", {"transaction_id": "$output.transaction_id"}))
def process_payment(amount: float, reservation_id: str) -> Payment:
    """Charge the customer's card."""
    CALLS["process_payment"] += 1
    time.sleep(API_SECONDS)
    LEDGER.append(f"charged {amount:.2f} EUR")
    return {"transaction_id": "T-1001", "order_id": "O-77"}


@tool
def refund_payment(transaction_id: str) -> dict[str, str]:
    """Refund a charge (undoes process_payment)."""
    time.sleep(API_SECONDS)
    LEDGER.append(f"refunded {transaction_id}")
    return {"refunded": transaction_id}


@tool
def create_shipment(order_id: str, city: str, carrier: Literal["FastShip", "SlowPost"]) -> Shipment:
    """Book a carrier to deliver an order."""
    CALLS["create_shipment"] += 1
    time.sleep(API_SECONDS)
    if city == "Atlantis":
        raise PermanentToolError(f"{carrier} does not deliver to Atlantis")
    if carrier == "FastShip":
        raise PermanentToolError(f"FastShip has no depot near {city}; SlowPost delivers there")
    LEDGER.append(f"shipped {order_id} with {carrier}")
    return {"shipment_id": "S-9", "carrier": carrier, "eta_days": 3}


shop = ToolRegistry(
    [
        check_stock,
        reserve_items,
        release_reservation,
        process_payment,
        refund_payment,
        create_shipment,
    ]
)

# %% [markdown]
# ## 1. Retries, for transient failures only
#
# A tool says a failure is worth retrying by raising `TransientToolError` (or `ToolError`
# with `transient=True`); the executor retries it with backoff (tenacity) within the
# tool's `RetryPolicy`. Any other error is permanent and fails the step at once. The
# inventory API times out twice, then answers. Every event's `data` is a typed payload, one
# class per event type: a `StepRetrying` holds the failed attempt's `error` and the `delay`
# before the next one.

# %%
from tooldag import Event, EventType
from tooldag.agent import plan_and_run
from tooldag.events import StepRetrying

FLAKY["failures_left"] = 2
events: list[Event] = []
stock = plan_and_run(
    "How many KB-42 keyboards are in stock?", tools=shop, llm=llm, on_event=events.append
)
print(stock.status, "|", stock.answer)
print("attempts:", stock.steps["stock"].attempts)
for event in events:
    if isinstance(event.data, StepRetrying):
        print(f"attempt {event.attempt} failed ({event.data.error.message}), retrying")
assert stock.ok and stock.steps["stock"].attempts == 3

# %% [markdown]
# ## 2. A failing tool, and a replan that keeps the finished work
#
# FastShip has no depot in Berlin: `create_shipment` fails permanently (one attempt, no
# retry). The payment and the reservation succeeded. Rather than give up, `plan_and_run`
# sends the model what happened and asks for a new plan (`max_replans`, 2 by default).

# %%
CALLS.clear()
LEDGER.clear()
events = []
berlin = plan_and_run(
    "Order 2 KB-42 keyboards and ship them to Berlin", tools=shop, llm=llm, on_event=events.append
)
print(berlin.status, "|", berlin.answer)
print("plans:", len(berlin.plans))

# %% [markdown]
# What the model was told when asked to replan:

# %%
print(server.requests[-1]["messages"][-1]["content"])

# %% [markdown]
# The new plan keeps `reserve` and `charge` exactly as they were, so their outputs are
# reused instead of running again: the customer is charged once, and only the shipment
# is retried, with the other carrier.

# %%
for record in berlin.steps.values():
    print(f"{record.id:8} {record.status:10} reused={record.reused}")
print(dict(CALLS))
print(LEDGER)
assert CALLS["reserve_items"] == 1 and CALLS["process_payment"] == 1
assert CALLS["create_shipment"] == 2 and berlin.steps["charge"].reused

# %% [markdown]
# Both plans, coloured by how their steps ended (the first from the events of its run,
# up to its `run_finished`):

# %%
import matplotlib.pyplot as plt

from tooldag.observe.plotting import plot_dag

ENDINGS = {EventType.STEP_SUCCEEDED, EventType.STEP_FAILED, EventType.STEP_BLOCKED}
first_run: dict[str, str] = {}
for event in events:
    if event.type is EventType.RUN_FINISHED:
        break
    if event.type in ENDINGS and event.step_id is not None:
        first_run[event.step_id] = event.type.value.removeprefix("step_")

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 2.2), layout="constrained")
plot_dag(berlin.plans[0], first_run, ax=left, title="plan 1: FastShip")
second_run = {sid: record.status for sid, record in berlin.steps.items()}
ax = plot_dag(
    berlin.plans[1], second_run, ax=right, title="plan 2: SlowPost (reserve, charge reused)"
)

# %% [markdown]
# ## 3. Giving up: compensation (saga)
#
# Nobody delivers to Atlantis. The replan fails too, the replans are spent
# (`max_replans=1` here), and the run is given up. Then every step that succeeded, in any
# plan, and whose tool declares a compensation is undone, last finished first: the
# payment is refunded before the reservation is released.

# %%
LEDGER.clear()
events = []
atlantis = plan_and_run(
    "Order 2 KB-42 keyboards and ship them to Atlantis",
    tools=shop,
    llm=llm,
    max_replans=1,
    on_event=events.append,
)
print(atlantis.status)
print(atlantis.error)
LEDGER

# %%
compensated = [e.step_id for e in events if e.type is EventType.STEP_COMPENSATED]
print("compensated, in order:", compensated)
print({sid: record.status.value for sid, record in atlantis.steps.items()})
assert compensated == ["charge", "reserve"]
assert LEDGER[-2:] == ["refunded T-1001", "released R-KB-42-2"]

# %% [markdown]
# The whole story on one chart, drawn from the events: `reserve` and `charge` ran once, in
# the first plan; the second plan reused them (diamonds) and its shipment failed again
# (both shipment attempts are hatched); then the payment was refunded and the
# reservation released, in that order (triangles).

# %%
from tooldag.observe.plotting import gantt

ax = gantt(events, title="Atlantis: two plans, then compensation")

# %%
server.stop()

# %% [markdown]
# **Next:** `06_monitoring`: the summary, the step timeline, a Gantt chart, and events as
# they stream.
