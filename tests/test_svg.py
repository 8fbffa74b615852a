"""The plan's SVG picture (tooldag.plan.svg): every step and every dependency drawn, no two boxes
overlapping, edges that go round the boxes, colours by status (the terminal's hues), text
escaped, and the notebook reprs of Plan and RunResult that use it."""

from __future__ import annotations

import colorsys
import json
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.color import Color

from tooldag.observe.monitor import STATUS_STYLES
from tooldag.plan.model import Plan
from tooldag.plan.parse import parse_plan
from tooldag.plan.svg import STATUS_PALETTE, Edge, Node, dag_svg, layout, plan_graph, plan_svg
from tooldag.result import RunResult, RunStatus, StepRecord, StepStatus

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def drawn_nodes(root: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    out = {}
    for g in root.iter(f"{SVG}g"):
        if "node" in (g.get("class") or "").split():
            rect = g.find(f"{SVG}rect")
            assert rect is not None
            node_id = g.get("data-id")
            assert node_id is not None and node_id not in out, f"{node_id} drawn twice"
            out[node_id] = tuple(float(rect.get(k) or 0) for k in ("x", "y", "width", "height"))
    return out  # type: ignore[return-value]


def drawn_edges(root: ET.Element) -> list[tuple[str, str]]:
    return [
        (p.get("data-source") or "", p.get("data-target") or "")
        for p in root.iter(f"{SVG}path")
        if "edge" in (p.get("class") or "").split()
    ]


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def check_picture(nodes: list[Node], edges: list[Edge], svg: str) -> None:
    root = parse(svg)
    boxes = drawn_nodes(root)
    assert set(boxes) == {n.id for n in nodes}
    known = {n.id for n in nodes}
    expected = {(e.source, e.target) for e in edges if {e.source, e.target} <= known}
    expected = {(a, b) for a, b in expected if a != b}
    assert sorted(drawn_edges(root)) == sorted(expected)
    for (a, box_a), (b, box_b) in combinations(boxes.items(), 2):
        assert not overlap(box_a, box_b), f"{a} and {b} overlap"
    _, _, width, height = (float(v) for v in (root.get("viewBox") or "").split())
    for node_id, (x, y, w, h) in boxes.items():
        assert x >= 0 and x + w <= width and y >= 0 and y + h <= height, node_id


# --------------------------------------------------------------------------- the seed DAGs


def example_plans() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


@pytest.mark.parametrize("path", example_plans(), ids=lambda p: p.stem)
def test_every_example_plan_is_drawn_whole_without_overlaps(path: Path) -> None:
    plan = parse_plan(path.read_text())
    nodes, edges = plan_graph(plan)
    assert len(nodes) == len(plan.steps)
    check_picture(nodes, edges, plan_svg(plan))


def test_the_examples_include_a_cycle_and_its_closing_edge_is_drawn_as_a_back_edge() -> None:
    plan = parse_plan((EXAMPLES / "cycle_plan.json").read_text())
    root = parse(plan_svg(plan))
    backs = [p for p in root.iter(f"{SVG}path") if "back" in (p.get("class") or "").split()]
    assert len(backs) == 1
    assert len(drawn_edges(root)) == 2


SHAPES = {
    "diamond": ["a>b", "a>c", "b>d", "c>d"],
    "fan": [*(f"src>w{i}" for i in range(12)), *(f"w{i}>sink" for i in range(12))],
    "skips": ["a>b", "b>c", "c>d", "d>e", "a>e", "a>d", "b>e"],
    "two trees": ["r>x", "r>y", "s>z", "x>z"],
    "lonely": [],
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_seed_shapes_are_drawn_whole_without_overlaps(name: str) -> None:
    pairs = [tuple(e.split(">")) for e in SHAPES[name]]
    ids = list(dict.fromkeys([x for pair in pairs for x in pair] or ["alone", "also"]))
    nodes = [Node(i, "tool") for i in ids]
    edges = [Edge(a, b) for a, b in pairs]
    check_picture(nodes, edges, dag_svg(nodes, edges))


def _route_avoids_boxes(nodes: list[Node], edges: list[Edge]) -> None:
    geometry = layout(nodes, edges)
    for route in geometry.routes:
        if route.back:
            continue
        a, b = geometry.boxes[route.source], geometry.boxes[route.target]
        assert a.layer < b.layer  # every forward edge goes down
        # Between its ends, an edge runs straight down through each row it crosses: at an x
        # where that row has no box.
        inner = route.points[1:-1]
        for (x, top), (_, bottom) in zip(inner[::2], inner[1::2], strict=True):
            for box in geometry.boxes.values():
                same_row = box.y == top and box.y + box.height == bottom
                assert not (same_row and box.x <= x <= box.x + box.width), (route, box)


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[Node], list[Edge]]:
    n = draw(st.integers(1, 30))
    ids = [f"s{i}" for i in range(n)]
    edges = []
    for j in range(1, n):
        for i in draw(st.sets(st.integers(0, j - 1), max_size=3)):
            edges.append(Edge(ids[i], ids[j], ordering_only=draw(st.booleans())))
    order = draw(st.permutations(ids))  # the steps of a plan come in any order
    return [Node(i, f"tool_{i}") for i in order], edges


@settings(max_examples=60, deadline=None)
@given(dags())
def test_any_dag_is_drawn_whole_without_overlaps_and_edges_go_round_boxes(
    graph: tuple[list[Node], list[Edge]],
) -> None:
    nodes, edges = graph
    check_picture(nodes, edges, dag_svg(nodes, edges))
    _route_avoids_boxes(nodes, edges)


def test_edges_to_unknown_steps_and_duplicate_ids() -> None:
    nodes = [Node("a"), Node("b")]
    root = parse(dag_svg(nodes, [Edge("a", "b"), Edge("a", "ghost"), Edge("b", "b")]))
    assert drawn_edges(root) == [("a", "b")]
    with pytest.raises(ValueError, match="distinct"):
        layout([Node("a"), Node("a")], [])


# --------------------------------------------------------------------------- looks


def test_boxes_are_filled_by_status_and_a_plain_plan_is_white() -> None:
    nodes = [Node("ok", "t"), Node("bad", "t"), Node("wait", "t", conditional=True)]
    edges = [Edge("ok", "bad"), Edge("ok", "wait", ordering_only=True)]
    statuses = {"ok": "succeeded", "bad": "failed", "wait": "skipped"}
    root = parse(dag_svg(nodes, edges, statuses))
    fills = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("data-id"):
            rect = g.find(f"{SVG}rect")
            assert rect is not None
            fills[g.get("data-id")] = (
                rect.get("fill"),
                rect.get("stroke"),
                rect.get("stroke-dasharray"),
            )
            assert g.get("data-status") == statuses[g.get("data-id") or ""]
    assert fills["ok"][:2] == STATUS_PALETTE["succeeded"]
    assert fills["bad"][:2] == STATUS_PALETTE["failed"]
    assert fills["wait"][2] is not None  # a conditional step is dashed
    dashed = [
        p.get("stroke-dasharray") for p in root.iter(f"{SVG}path") if p.get("data-target") == "wait"
    ]
    assert dashed != [None]  # an ordering-only edge is dashed too
    legend = [
        t.text
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "legend"
        for t in g.iter(f"{SVG}text")
    ]
    assert sorted(legend) == ["failed", "skipped", "succeeded"]

    plain = parse(dag_svg(nodes, edges))
    assert {
        r.get("fill")
        for g in plain.iter(f"{SVG}g")
        if g.get("data-id")
        for r in g.iter(f"{SVG}rect")
    } == {"#ffffff"}


def _hue(colour: tuple[int, int, int]) -> float:
    h, _, _ = colorsys.rgb_to_hls(*(c / 255 for c in colour))
    return h * 360


def _saturation(colour: tuple[int, int, int]) -> float:
    return colorsys.rgb_to_hls(*(c / 255 for c in colour))[2]


@pytest.mark.parametrize("status", sorted(STATUS_STYLES))
def test_the_palette_has_the_hue_the_terminal_shows_for_each_status(status: str) -> None:
    terminal = Color.parse(STATUS_STYLES[status].split()[-1]).get_truecolor()
    stroke = STATUS_PALETTE[status][1]
    picture = tuple(int(stroke[i : i + 2], 16) for i in (1, 3, 5))
    if _saturation((terminal.red, terminal.green, terminal.blue)) < 0.1:  # grey
        assert _saturation(picture) < 0.1  # type: ignore[arg-type]
        return
    distance = abs(_hue((terminal.red, terminal.green, terminal.blue)) - _hue(picture))  # type: ignore[arg-type]
    assert min(distance, 360 - distance) < 35, (status, STATUS_STYLES[status], stroke)


def test_every_status_has_a_colour() -> None:
    assert {*StepStatus, *RunStatus} <= set(STATUS_PALETTE)


def test_text_is_escaped_and_long_names_are_cut_with_the_whole_in_the_tooltip() -> None:
    long = "a_really_long_step_identifier_that_does_not_fit_in_a_box_at_all"
    nodes = [Node('<b>"&amp;', "t<ool>"), Node(long, "t")]
    svg = dag_svg(nodes, [Edge(nodes[0].id, long)])
    root = parse(svg)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert '<b>"&amp;' in texts and "t<ool>" in texts
    assert any(t and t.endswith("…") and long.startswith(t[:-1]) for t in texts)
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any(long in t for t in titles)


# --------------------------------------------------------------------------- notebook reprs


WEATHER = Plan.model_validate(json.loads((EXAMPLES / "weather_plan.json").read_text()))


def test_a_plan_shows_as_its_graph_in_a_notebook() -> None:
    svg = WEATHER._repr_svg_()
    assert set(drawn_nodes(parse(svg))) == {"weather", "outfit", "alert"}
    html = WEATHER._repr_html_()
    assert svg in html and "Get the weather in London" in html


def test_a_run_result_shows_its_graph_coloured_by_how_each_step_ended() -> None:
    result = RunResult(
        run_id="r1",
        status=RunStatus.FAILED,
        answer="<not html>",
        plans=[WEATHER],
        steps={
            "weather": StepRecord(id="weather", tool="get_weather", status=StepStatus.SUCCEEDED),
            "outfit": StepRecord(id="outfit", tool="recommend_outfit", status=StepStatus.FAILED),
            "alert": StepRecord(id="alert", tool="send_alert", status=StepStatus.SKIPPED),
        },
    )
    svg = result._repr_svg_()
    assert svg is not None
    root = parse(svg)
    status = {
        g.get("data-id"): g.get("data-status") for g in root.iter(f"{SVG}g") if g.get("data-id")
    }
    assert status == {"weather": "succeeded", "outfit": "failed", "alert": "skipped"}
    html = result._repr_html_()
    assert svg in html
    assert "&lt;not html&gt;" in html and "<not html>" not in html
    assert html.count("<tr>") == 4  # the head and one row per step
    assert RunResult(run_id="r2", status=RunStatus.REJECTED)._repr_svg_() is None
