"""Data flow: which private or untrusted outputs a plan can carry out of the machine.

``flows(plan, registry)`` follows every channel along which one step's output can reach another
step: whole-value references (``$f.content``), field paths (``$f.rows.0.name``), ``${...}``
interpolation, references nested in list and object arguments, and the control channels, a
``when`` condition and ``depends_on``. It returns a :class:`Flow` for each way that the output of
a source (a tool with ``reads_private`` or ``untrusted_output``) reaches an argument that leaves
the machine (a tool's ``egress``):

    read_file(path=".env") -> summarize -> http_get.url

What a step's output carries is its own source, if it is one, plus everything that reaches any of
its arguments, its ``when`` and its ``depends_on``: a tool's output may depend on every input, and
taint passes through any number of steps. Precise where it matters: a flow only into an argument
that stays local (``write_file``'s ``path``) is no finding, nor is a literal, nor a source whose
output reaches no egress step.

Private data reaching any egress argument is a finding: it leaves. Untrusted text alone (a web
page, a search hit) is a finding only where it can choose *where* a request goes: a destination
argument (``http_get``'s ``url``, ``send_email``'s ``to``; see
:func:`~tooldag.validate.egress.destination_arguments`), or any channel of a tool that does not
say what its destination is. So ``wikipedia_search -> wikipedia_page.title`` (a fixed service)
and a web page summarised into a mail to a fixed recipient are no findings, while a page that
supplies the next URL is.

The control channels are findings of their own (``channel`` ``"when"`` or ``"depends_on"``), for
the sources that reach an egress step no other way: a step whose ``when`` reads private data
tells whoever receives its request one bit of it (that it ran), and ``depends_on`` is how a plan
orders a step after another one's effects (a file written, then uploaded), so data can move along
it without a reference.

A finding is not an error: :func:`~tooldag.validate.validate` never returns one, so a plan with a
flow is as valid as it was and the planner is not asked again. What a flow means (ask before the
step runs, refuse the plan, or nothing) is the caller's policy; :meth:`Flow.issue` is the
``data_flow`` :class:`~tooldag.issues.Issue` to show, or to send back to the planner.

Linear in steps + references: one pass over the arguments, then one over the steps in dependency
order. A plan without both a source and an egress step is dismissed after a look at its tools.
Each step tracks at most :data:`MAX_SOURCES` sources (the first in plan order): a step reached by
more is still flagged, naming that many. On a plan that is not valid (a cycle, an unknown tool)
the answer is a best effort: unknown tools count as neither source nor egress.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ..issues import Issue
from ..plan.model import Condition, Plan, Step
from ..plan.parse import _pause_gc, _resume_gc
from ..plan.refs import Ref, Template, parse_string
from ..registry.registry import Tool, ToolRegistry
from .egress import destination_arguments

__all__ = ["Flow", "MAX_SOURCES", "flow_issues", "flows"]

# Sources tracked per step: enough for any real plan, and what keeps the analysis linear.
MAX_SOURCES = 32
# Steps a path names before the source; a longer path is shown with "…" in the middle.
_MAX_HOPS = 6

Channel = Literal["data", "when", "depends_on"]
_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Flow:
    """A source's output reaching a step that sends it out of the machine.

    ``source`` and ``step`` are step ids; ``argument`` is the egress argument it reaches
    (``channel`` ``"data"``), or None when it reaches the step's ``when`` or ``depends_on``;
    ``kinds`` what the source is (``"private"``, ``"untrusted"``); ``via`` the ids of the steps
    in between that the path names; ``path`` the JSON path of the channel in the plan; ``text``
    the path as people read it, ``read_file(path=".env") -> summarize -> http_get.url``.
    """

    source: str
    step: str
    argument: str | None
    channel: Channel
    kinds: frozenset[str]
    via: tuple[str, ...]
    path: str
    text: str

    def __str__(self) -> str:
        return self.text

    def issue(self, *, approvable: bool = True) -> Issue:
        """This flow as a ``data_flow`` issue, written for an LLM (or a person) to act on;
        ``approvable=False`` leaves out that a person may approve it (a strict policy)."""
        what = {
            frozenset({"private"}): "private data",
            frozenset({"untrusted"}): "untrusted text",
        }.get(self.kinds, "private, untrusted data")
        if self.channel == "data":
            message = f"step {self.step!r} can send {what} out of the machine: {self.text}"
            hint = (
                f"keep the output of step {self.source!r} out of {self.argument}, directly or "
                "through other steps"
            )
        else:
            how = (
                f"whether it runs depends on {what} (its when)"
                if self.channel == "when"
                else f"it runs after a step holding {what} (its depends_on)"
            )
            message = (
                f"step {self.step!r} sends its arguments out of the machine, and {how}: {self.text}"
            )
            hint = (
                f"do not make step {self.step!r} depend on step {self.source!r} in its "
                f"{self.channel}"
            )
        if approvable:
            hint += ", or have the user approve this step"
        return Issue("data_flow", message, step=self.step, path=self.path, hint=hint)


def flows(plan: Plan, registry: ToolRegistry) -> list[Flow]:
    """Every flow of a private or untrusted output into an egress argument of ``plan``, in plan
    order of the receiving steps; an empty list when there is none."""
    was_enabled = _pause_gc()  # as validate does: many small objects and no cycles
    try:
        return _Analysis(plan, registry).run()
    finally:
        _resume_gc(was_enabled)


def flow_issues(plan: Plan, registry: ToolRegistry) -> list[Issue]:
    """:func:`flows` as ``data_flow`` issues."""
    return [flow.issue() for flow in flows(plan, registry)]


def _refs_in(value: Any, out: list[str]) -> None:
    """The step ids referenced anywhere in an argument value (a literal names none)."""
    kind = type(value)
    if kind is str:
        if "$" in value:
            parsed = parse_string(value)
            if type(parsed) is Ref:
                out.append(parsed.step)
            elif type(parsed) is Template:
                out.extend(p.step for p in parsed.parts if isinstance(p, Ref))
    elif kind is list:
        for item in value:
            _refs_in(item, out)
    elif kind is dict:
        for item in value.values():
            _refs_in(item, out)


def _condition_refs(condition: Condition, out: list[str]) -> None:
    for leaf in condition.iter_leaves():
        _refs_in(leaf.ref, out)
        _refs_in(leaf.value, out)


class _Analysis:
    """One analysis of ``plan``: the channels of every step, then what each step carries."""

    def __init__(self, plan: Plan, registry: ToolRegistry) -> None:
        self.steps = plan.steps
        self.registry = registry
        self.tools: list[Tool | None] = []
        self.index: dict[str, int] = {}
        # Per step: (argument, referenced steps) for the arguments that reference any, then the
        # steps its when and its depends_on name.
        self.arg_refs: list[list[tuple[str, list[int]]]] = []
        self.when_refs: list[list[int]] = []
        self.dep_refs: list[list[int]] = []
        # Per step: every step it reads from, by any channel, once each.
        self.ins: list[list[int]] = []
        self.carry: list[frozenset[int]] = []
        # (first hop, source) -> the steps a path names and whether it was cut; per source, how
        # it is shown and what it is. Many receivers share both.
        self.paths: dict[tuple[int, int], tuple[tuple[int, ...], bool]] = {}
        self.shown: dict[int, tuple[str, frozenset[str]]] = {}

    def run(self) -> list[Flow]:
        if not self.look_at_tools():
            return []
        self.read_channels()
        order = self.order()
        if not self.any_flow(order):
            return []
        self.propagate(order)
        return list(self.findings())

    def look_at_tools(self) -> bool:
        """Each step's tool; whether the plan has both a source and an egress step."""
        known: dict[str, Tool | None] = {}
        sources = sinks = False
        registry = self.registry
        tools = self.tools
        for step in self.steps:
            name = step.tool
            if name in known:
                tools.append(known[name])
                continue
            found = registry.get(name) if name in registry else None
            known[name] = found
            tools.append(found)
            if found is not None:
                sources = sources or _is_source(found)
                sinks = sinks or bool(found.egress)
        return sources and sinks

    def read_channels(self) -> None:
        """Which steps each argument, the ``when`` and ``depends_on`` of every step name. Runs
        once per argument of a plan that may have 100k steps, so a whole-value reference and a
        template are taken inline."""
        steps = self.steps
        index = self.index
        for i, step in enumerate(steps):
            index.setdefault(step.id, i)
        get = index.get
        nothing: list[int] = []  # shared by every step without that channel; never changed
        for i, step in enumerate(steps):
            args: list[tuple[str, list[int]]] = []
            ins = nothing
            for arg, value in step.args.items():
                kind = type(value)
                if kind is str:
                    if "$" not in value:
                        continue
                    parsed = parse_string(value)
                    if type(parsed) is Ref:
                        j = get(parsed.step)
                        if j is None or j == i:
                            continue
                        refs = [j]
                    elif type(parsed) is Template:
                        refs = self.indexes([p.step for p in parsed.parts if type(p) is Ref], i)
                    else:
                        continue
                elif kind is list or kind is dict:
                    names: list[str] = []
                    _refs_in(value, names)
                    refs = self.indexes(names, i)
                else:
                    continue
                if refs:
                    args.append((arg, refs))
            when = deps = nothing
            if step.when is not None:
                names = []
                _condition_refs(step.when, names)
                when = self.indexes(names, i)
            if step.depends_on:
                deps = self.indexes(step.depends_on, i)
            if len(args) == 1 and not when and not deps:
                ins = args[0][1]  # the common case: one argument reads other steps
            elif args or when or deps:
                ins = list(dict.fromkeys([*(j for _, r in args for j in r), *when, *deps]))
            self.arg_refs.append(args)
            self.when_refs.append(when)
            self.dep_refs.append(deps)
            self.ins.append(ins)

    def indexes(self, names: list[str], owner: int) -> list[int]:
        """The positions of the steps named, once each, leaving out the step itself and ids
        that are not in the plan (the validator reports those)."""
        get = self.index.get
        if len(names) == 1:
            j = get(names[0])
            return [j] if j is not None and j != owner else []
        return [j for j in dict.fromkeys(map(get, names)) if j is not None and j != owner]

    def order(self) -> list[int]:
        """The steps, each after every step it reads from (Kahn); the steps of a cycle come
        last, in plan order, with what their inputs carried by then."""
        n = len(self.steps)
        ins = self.ins
        if all(j < i for i in range(n) for j in ins[i]):
            return list(range(n))  # how plans are usually written
        waiting = [len(step_ins) for step_ins in ins]
        dependents: list[list[int]] = [[] for _ in range(n)]
        for i in range(n):
            for j in ins[i]:
                dependents[j].append(i)
        ready = [i for i in range(n) if not waiting[i]]
        done: list[int] = []
        while ready:
            node = ready.pop()
            done.append(node)
            for child in dependents[node]:
                waiting[child] -= 1
                if not waiting[child]:
                    ready.append(child)
        placed = set(done)
        return done + [i for i in range(n) if i not in placed]

    def any_flow(self, order: list[int]) -> bool:
        """Whether any source reaches any egress channel: one look at each edge, so that a plan
        with sources and egress steps but no flow between them costs no more than that."""
        tools = self.tools
        ins = self.ins
        tainted = [False] * len(tools)
        for i in order:
            if _is_source(tools[i]):
                tainted[i] = True
                continue
            for j in ins[i]:
                if tainted[j]:
                    tainted[i] = True
                    break
        for i, t in enumerate(tools):
            if t is None or not t.egress:
                continue
            for j in (*self.when_refs[i], *self.dep_refs[i]):
                if tainted[j]:
                    return True
            for arg, refs in self.arg_refs[i]:
                if t.is_egress(arg) and any(tainted[j] for j in refs):
                    return True
        return False

    def propagate(self, order: list[int]) -> None:
        """What each step's output carries: its own source, and whatever reaches any input."""
        tools = self.tools
        ins = self.ins
        carry = self.carry = [_EMPTY] * len(self.steps)
        for i in order:
            acc = frozenset({i}) if _is_source(tools[i]) else _EMPTY
            for j in ins[i]:
                got = carry[j]
                if not got or got is acc:
                    continue
                if not acc:
                    acc = got  # shared, not copied: most steps carry what one input carried
                elif not got <= acc:
                    acc = acc | got
            if len(acc) > MAX_SOURCES:
                acc = frozenset(sorted(acc)[:MAX_SOURCES])
            carry[i] = acc

    def findings(self) -> Iterator[Flow]:
        """Each source into each egress argument; then, once, each source that reaches the
        step only through its ``when`` or ``depends_on`` (a ``depends_on`` that repeats a
        reference adds nothing to a data flow already found)."""
        tools = self.tools
        for i, t in enumerate(tools):
            if t is None or not t.egress:
                continue
            reported: set[int] = set()
            for arg, refs in self.arg_refs[i]:
                if t.is_egress(arg):
                    yield from self.flows_into(i, t, refs, "data", arg, reported)
            if self.when_refs[i]:
                yield from self.flows_into(i, t, self.when_refs[i], "when", None, reported)
            if self.dep_refs[i]:
                yield from self.flows_into(i, t, self.dep_refs[i], "depends_on", None, reported)

    def flows_into(
        self,
        i: int,
        t: Tool,
        refs: list[int],
        channel: Channel,
        arg: str | None,
        reported: set[int],
    ) -> Iterator[Flow]:
        """A flow for each source that one channel of step ``i`` receives (a control channel:
        each source not ``reported`` yet), with the step through which it arrives first."""
        carry = self.carry
        first_hop: dict[int, int] = {}
        for j in refs:
            for source in carry[j]:
                first_hop.setdefault(source, j)
        destinations = destination_arguments(t)
        steers = destinations is None or (channel == "data" and arg in destinations)
        if not steers:  # untrusted text alone is harmless where it cannot pick the destination
            tools = self.tools
            first_hop = {k: v for k, v in first_hop.items() if _is_private(tools[k])}
        if channel != "data":
            first_hop = {k: v for k, v in first_hop.items() if k not in reported}
        if not first_hop:
            return
        reported.update(first_hop)
        steps = self.steps
        step_id = steps[i].id
        path = f"steps[{i}].args.{arg}" if channel == "data" else f"steps[{i}].{channel}"
        sink = f"{t.name}.{arg if channel == 'data' else channel}"
        for source in sorted(first_hop)[:MAX_SOURCES]:
            hops, elided = self.hops(first_hop[source], source)
            call, kinds = self.source_of(source)
            labels = [call, "…"] if elided else [call]
            labels.extend(steps[h].tool for h in hops)
            labels.append(sink)
            yield Flow(
                source=steps[source].id,
                step=step_id,
                argument=arg,
                channel=channel,
                kinds=kinds,
                via=tuple(steps[h].id for h in hops),
                path=path,
                text=" -> ".join(labels),
            )

    def source_of(self, source: int) -> tuple[str, frozenset[str]]:
        """How a source step is shown in a path, and what kinds of data it yields."""
        known = self.shown.get(source)
        if known is None:
            tool = self.tools[source]
            assert tool is not None  # a source has a tool
            kinds = frozenset(
                kind
                for kind, has in (
                    ("private", tool.reads_private),
                    ("untrusted", tool.untrusted_output),
                )
                if has
            )
            known = self.shown[source] = (_call(self.steps[source]), kinds)
        return known

    def hops(self, first: int, source: int) -> tuple[tuple[int, ...], bool]:
        """The steps between ``source`` and the receiving step, source side first, walking back
        from ``first`` (the step the receiver reads); whether the walk stopped short."""
        key = (first, source)
        known = self.paths.get(key)
        if known is not None:
            return known
        carry = self.carry
        ins = self.ins
        back: list[int] = []
        node = first
        elided = False
        while node != source:
            if len(back) == _MAX_HOPS:
                elided = True
                break
            back.append(node)
            node = next((j for j in ins[node] if source in carry[j]), source)
        back.reverse()
        known = self.paths[key] = (tuple(back), elided)
        return known


def _is_private(tool: Tool | None) -> bool:
    return tool is not None and tool.reads_private


def _is_source(tool: Tool | None) -> bool:
    return tool is not None and (tool.reads_private or tool.untrusted_output)


def _call(step: Step) -> str:
    """``read_file(path=".env")``: a source step as the path shows it."""
    shown = []
    for name, value in list(step.args.items())[:3]:
        text = json.dumps(value, ensure_ascii=False, default=str)
        shown.append(f"{name}={text if len(text) <= 40 else text[:37] + '...'}")
    if len(step.args) > 3:
        shown.append("...")
    return f"{step.tool}({', '.join(shown)})"
