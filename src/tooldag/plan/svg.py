"""A plan's graph as SVG: a layered layout and its drawing, with no dependency and no network.

One renderer for every picture of a plan: a notebook cell (``Plan._repr_svg_``,
``RunResult._repr_html_``), the web viewer (``tooldag ui``) and a file. It takes plain ids, edges
and statuses, so it knows nothing of runs or stores; :func:`plan_svg` reads them off a plan.

The layout is the classic layered one (Sugiyama): a step sits one row below the lowest step it
waits for, edges that span rows pass through placeholders (so that they go round the boxes, not
through them), the order within a row is improved by barycentre sweeps that keep the order with
the fewest crossings, and boxes are placed as near the middle of their neighbours as the order
and the gaps allow (an isotonic regression, so boxes of one row never overlap). A cycle (an
invalid plan can have one) is drawn too: its closing edge is a back edge, dashed and red.

>>> svg = dag_svg([Node("a", "t"), Node("b", "t")], [Edge("a", "b")], {"a": "succeeded"})
>>> svg.count('class="node'), svg.count('class="edge')
(2, 1)
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "Box",
    "Edge",
    "Layout",
    "Node",
    "Route",
    "STATUS_PALETTE",
    "dag_svg",
    "layout",
    "plan_graph",
    "plan_svg",
]

# Fill and stroke of every status word, step and run statuses alike: the hues of the terminal's
# STATUS_STYLES (tooldag.observe.monitor; tests keep the two in step), light enough to read on.
STATUS_PALETTE: dict[str, tuple[str, str]] = {
    "pending": ("#eeeeee", "#8c8c8c"),
    "running": ("#fff3b0", "#d4a300"),
    "succeeded": ("#c8f7c5", "#2e8b57"),
    "failed": ("#f8c4c4", "#c0392b"),
    "skipped": ("#dde3ff", "#3a56d4"),
    "blocked": ("#f9d9b5", "#d35400"),
    "cancelled": ("#f5d0f0", "#b0389f"),
    "compensated": ("#cdf1f5", "#1b9aaa"),
    "paused": ("#cdf1f5", "#1b9aaa"),
    "rejected": ("#f9d9b5", "#d35400"),
    "budget_exceeded": ("#f8c4c4", "#c0392b"),
    "interrupted": ("#f5d0f0", "#b0389f"),
}
_PLAIN = ("#ffffff", "#5f6b7a")  # a plan drawn without statuses

NODE_HEIGHT = 46.0
MIN_NODE_WIDTH = 110.0
MAX_NODE_WIDTH = 220.0
_GAP = 28.0  # between boxes of a row
_DUMMY_WIDTH = 14.0  # a placeholder an edge passes through
_ROW_GAP = 54.0
_MARGIN = 16.0
_SWEEPS = 6
# Placeholders grow with the square of a graph's depth in the worst case; past this many per
# step, long edges are drawn straight (they may then cross boxes, but the page stays quick).
_DUMMIES_PER_NODE = 4


@dataclass(frozen=True, slots=True)
class Node:
    """A box: ``id`` in bold, ``label`` (the tool) under it; ``conditional`` (a ``when``) is
    drawn dashed."""

    id: str
    label: str = ""
    conditional: bool = False


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` must finish before ``target``; ``ordering_only`` (``depends_on`` without a
    reference) is drawn dashed."""

    source: str
    target: str
    ordering_only: bool = False


@dataclass(frozen=True, slots=True)
class Box:
    """Where a node is drawn: top-left corner, size, row (``layer``) and place in the row."""

    id: str
    x: float
    y: float
    width: float
    height: float
    layer: int
    order: int

    @property
    def centre(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True, slots=True)
class Route:
    """An edge's path: the points it passes, from the source's bottom to the target's top (a
    ``back`` edge closes a cycle and goes up)."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]
    ordering_only: bool = False
    back: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: dict[str, Box]
    routes: tuple[Route, ...]
    width: float
    height: float


# --------------------------------------------------------------------------- layout


def _node_width(nodes: Sequence[Node]) -> float:
    # One width for every box keeps rows tidy; text that does not fit is cut with an ellipsis
    # (the whole of it is the box's tooltip).
    longest = max((max(len(n.id) * 7.4, len(n.label) * 6.4) for n in nodes), default=0.0)
    return max(MIN_NODE_WIDTH, min(MAX_NODE_WIDTH, longest + 24.0))


def _forward_edges(
    ids: Sequence[str], edges: Sequence[Edge]
) -> tuple[list[Edge], list[Edge], dict[str, list[str]]]:
    """The edges between known nodes, split into forward and back (those that close a cycle,
    found by a depth-first search in the nodes' order), and each node's forward successors."""
    known = set(ids)
    out: dict[str, list[Edge]] = {i: [] for i in ids}
    seen_pairs: set[tuple[str, str]] = set()
    for e in edges:
        pair = (e.source, e.target)
        known_pair = e.source in known and e.target in known and e.source != e.target
        if known_pair and pair not in seen_pairs:
            seen_pairs.add(pair)
            out[e.source].append(e)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[tuple[str, str]] = set()
    for root in ids:
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, index = stack[-1]
            if index < len(out[node]):
                stack[-1] = (node, index + 1)
                nxt = out[node][index].target
                if state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                stack.pop()
    forward, backward = [], []
    succ: dict[str, list[str]] = {i: [] for i in ids}
    for node in ids:
        for e in out[node]:
            if (e.source, e.target) in back:
                backward.append(e)
            else:
                forward.append(e)
                succ[e.source].append(e.target)
    return forward, backward, succ


def _layers(ids: Sequence[str], succ: Mapping[str, list[str]]) -> dict[str, int]:
    """Longest path from the sources: a node one row below the lowest node it waits for."""
    indegree = {i: 0 for i in ids}
    for targets in succ.values():
        for t in targets:
            indegree[t] += 1
    layer = {i: 0 for i in ids}
    ready = [i for i in ids if indegree[i] == 0]
    while ready:
        node = ready.pop()
        for t in succ[node]:
            layer[t] = max(layer[t], layer[node] + 1)
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    return layer


def _crossings(upper: Sequence[int], lower_positions: list[list[int]]) -> int:
    """Crossings between two adjacent rows: the inversions among the edges sorted by their
    upper end (``lower_positions[i]`` are the lower ends of the edges from upper item ``i``)."""
    seq = [p for i in upper for p in sorted(lower_positions[i])]
    # Count inversions with a sorted list: len(seq) log(len(seq)), fine for thousands of edges.
    seen: list[int] = []
    count = 0
    for p in reversed(seq):
        count += bisect.bisect_left(seen, p)
        bisect.insort(seen, p)
    return count


def _isotonic(desired: Sequence[float], widths: Sequence[float]) -> list[float]:
    """Left edges as close (least squares) to ``desired`` as keeping the order and a gap between
    neighbours allows: pool-adjacent-violators on the offsets."""
    offsets = [0.0]
    for i in range(1, len(widths)):
        offsets.append(offsets[-1] + widths[i - 1] + _GAP)
    targets = [d - o for d, o in zip(desired, offsets, strict=True)]
    blocks: list[list[float]] = []  # [mean, count]
    for t in targets:
        blocks.append([t, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, count = blocks.pop()
            prev = blocks[-1]
            total = prev[1] + count
            prev[0] = (prev[0] * prev[1] + mean * count) / total
            prev[1] = total
    values: list[float] = []
    for mean, count in blocks:
        values.extend([mean] * int(count))
    return [v + o for v, o in zip(values, offsets, strict=True)]


@dataclass
class _Rows:
    """The rows being laid out: real nodes and placeholders (``"\\0" + n``) where a long edge
    crosses a row, with the links between items of adjacent rows."""

    order: list[list[str]]
    layer: dict[str, int]
    width: dict[str, float]
    up: dict[str, list[str]]
    down: dict[str, list[str]]
    chains: dict[tuple[str, str], list[str]]


def _rows(
    ids: Sequence[str], width: float, forward: Sequence[Edge], layer: dict[str, int]
) -> _Rows:
    item_layer: dict[str, int] = dict(layer)
    item_width: dict[str, float] = dict.fromkeys(ids, width)
    chains: dict[tuple[str, str], list[str]] = {}
    budget = _DUMMIES_PER_NODE * len(ids) + 64
    links: list[tuple[str, str]] = []
    for e in forward:
        span = layer[e.target] - layer[e.source]
        if span > 1 and span - 1 <= budget:
            budget -= span - 1
            chain = []
            for k in range(layer[e.source] + 1, layer[e.target]):
                dummy = f"\0{len(item_layer)}"
                item_layer[dummy] = k
                item_width[dummy] = _DUMMY_WIDTH
                chain.append(dummy)
            chains[(e.source, e.target)] = chain
            links.extend(itertools.pairwise([e.source, *chain, e.target]))
        elif span == 1:
            links.append((e.source, e.target))
        # else: over budget, drawn straight from box to box
    depth = max(layer.values(), default=-1) + 1
    order: list[list[str]] = [[] for _ in range(depth)]
    for item, k in item_layer.items():  # nodes in their given order, then placeholders
        order[k].append(item)
    up: dict[str, list[str]] = {i: [] for i in item_layer}
    down: dict[str, list[str]] = {i: [] for i in item_layer}
    for a, b in links:
        down[a].append(b)
        up[b].append(a)
    return _Rows(order, item_layer, item_width, up, down, chains)


def _total_crossings(rows: _Rows, order: list[list[str]]) -> int:
    pos = {item: i for row in order for i, item in enumerate(row)}
    total = 0
    for k in range(len(order) - 1):
        lower = [[pos[b] for b in rows.down[a]] for a in order[k]]
        total += _crossings(range(len(order[k])), lower)
    return total


def _untangle(rows: _Rows) -> None:
    """Barycentre sweeps, down and up, keeping the order with the fewest crossings."""
    depth = len(rows.order)
    best = [list(r) for r in rows.order]
    best_count = _total_crossings(rows, best)
    order = [list(r) for r in rows.order]
    for sweep in range(_SWEEPS):
        if best_count == 0:
            break
        downward = sweep % 2 == 0
        neighbours = rows.up if downward else rows.down
        pos = {item: i for row in order for i, item in enumerate(row)}
        for k in range(1, depth) if downward else range(depth - 2, -1, -1):
            keyed = []
            for i, item in enumerate(order[k]):
                near = [pos[n] for n in neighbours[item]]
                keyed.append((sum(near) / len(near) if near else float(i), i, item))
            keyed.sort()
            order[k] = [item for _, _, item in keyed]
            pos.update({item: i for i, item in enumerate(order[k])})
        count = _total_crossings(rows, order)
        if count < best_count:
            best, best_count = [list(r) for r in order], count
    rows.order = best


def _place(rows: _Rows) -> dict[str, float]:
    """Left edges: rows packed and centred, then pulled towards their neighbours' centres."""
    width = rows.width
    x: dict[str, float] = {}
    for row in rows.order:
        at = 0.0
        for item in row:
            x[item] = at
            at += width[item] + _GAP
    widest = max((x[r[-1]] + width[r[-1]] for r in rows.order if r), default=0.0)
    for row in rows.order:
        if row:
            shift = (widest - (x[row[-1]] + width[row[-1]])) / 2
            for item in row:
                x[item] += shift
    depth = len(rows.order)
    for sweep in range(4):
        downward = sweep % 2 == 0
        neighbours = rows.up if downward else rows.down
        for k in range(1, depth) if downward else range(depth - 2, -1, -1):
            row = rows.order[k]
            desired = []
            for item in row:
                near = neighbours[item]
                if near:
                    mid = sum(x[n] + width[n] / 2 for n in near) / len(near)
                    desired.append(mid - width[item] / 2)
                else:
                    desired.append(x[item])
            placed = _isotonic(desired, [width[i] for i in row])
            x.update(zip(row, placed, strict=True))
    left = min(x.values(), default=0.0)
    return {item: value - left + _MARGIN for item, value in x.items()}


def layout(nodes: Sequence[Node], edges: Sequence[Edge]) -> Layout:
    """Boxes and edge routes for ``nodes`` (ids must be distinct) and ``edges`` (those to or
    from unknown ids, and self-loops, are left out)."""
    ids = [n.id for n in nodes]
    if len(set(ids)) != len(ids):
        raise ValueError("node ids must be distinct")
    node_width = _node_width(nodes)
    forward, backward, succ = _forward_edges(ids, edges)
    layer = _layers(ids, succ)
    rows = _rows(ids, node_width, forward, layer)
    _untangle(rows)
    x = _place(rows)
    y_of = [_MARGIN + k * (NODE_HEIGHT + _ROW_GAP) for k in range(len(rows.order))]

    boxes: dict[str, Box] = {}
    for k, row in enumerate(rows.order):
        for i, item in enumerate(row):
            if item in layer:
                boxes[item] = Box(item, x[item], y_of[k], node_width, NODE_HEIGHT, k, i)
    routes: list[Route] = []
    for e in forward:
        src, dst = boxes[e.source], boxes[e.target]
        points = [(src.centre, src.y + src.height)]
        for dummy in rows.chains.get((e.source, e.target), ()):
            mid, top = x[dummy] + _DUMMY_WIDTH / 2, y_of[rows.layer[dummy]]
            points += [(mid, top), (mid, top + NODE_HEIGHT)]
        points.append((dst.centre, dst.y))
        routes.append(Route(e.source, e.target, tuple(points), e.ordering_only))
    for e in backward:
        src, dst = boxes[e.source], boxes[e.target]
        points = [
            (src.x + src.width, src.y + src.height / 2),
            (dst.x + dst.width, dst.y + dst.height / 2),
        ]
        routes.append(Route(e.source, e.target, tuple(points), e.ordering_only, back=True))
    right = max((x[i] + rows.width[i] for i in x), default=0.0)
    total_width = right + _MARGIN + (40.0 if backward else 0.0)
    total_height = y_of[-1] + NODE_HEIGHT + _MARGIN if y_of else 2 * _MARGIN
    return Layout(boxes, tuple(routes), max(total_width, 2 * _MARGIN), total_height)


# --------------------------------------------------------------------------- drawing


def _fit(text: str, width: float, char: float) -> str:
    room = max(1, int((width - 14) / char))
    return text if len(text) <= room else text[: max(1, room - 1)] + "…"


def _path(route: Route) -> str:
    pts = route.points
    if route.back:
        (x1, y1), (x2, y2) = pts[0], pts[-1]
        bulge = max(x1, x2) + 36
        return f"M{x1:.0f},{y1:.0f} C{bulge:.0f},{y1:.0f} {bulge:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
    parts = [f"M{pts[0][0]:.0f},{pts[0][1]:.0f}"]
    for (x1, y1), (x2, y2) in itertools.pairwise(pts):
        if round(x1) == round(x2):
            parts.append(f"V{y2:.0f}")
            continue
        mid = (y1 + y2) / 2
        parts.append(f"C{x1:.0f},{mid:.0f} {x2:.0f},{mid:.0f} {x2:.0f},{y2:.0f}")
    return " ".join(parts)


def dag_svg(
    nodes: Sequence[Node],
    edges: Sequence[Edge],
    statuses: Mapping[str, str] | None = None,
    *,
    title: str | None = None,
    legend: bool = True,
) -> str:
    """The graph as one ``<svg>`` element, boxes filled by ``statuses`` (a status word per node
    id; :data:`STATUS_PALETTE`). Every box is a ``<g class="node" data-id=...>`` and every edge a
    ``<path class="edge" data-source=... data-target=...>``, for the web viewer to find."""
    geometry = layout(nodes, edges)
    by_id = {n.id: n for n in nodes}
    digest = hashlib.sha1(
        "\n".join([*(n.id for n in nodes), *(f"{e.source}>{e.target}" for e in edges)]).encode()
    ).hexdigest()[:8]
    marker = f"tooldag-arrow-{digest}"
    used: list[str] = []
    height = geometry.height
    shown = [s for s in STATUS_PALETTE if statuses and s in set(statuses.values())]
    if legend and shown:
        height += 26
    width = geometry.width
    label = title or f"plan graph: {len(nodes)} steps"
    # Attributes that every edge, and every box, shares are set once on the group around them
    # (presentation attributes inherit): a 2,000-step plan draws in well under a megabyte.
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tooldag-dag" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f"aria-label={quoteattr(label)} "
        f'font-family="system-ui, -apple-system, Segoe UI, sans-serif" '
        f'style="max-width:100%;height:auto;background:#ffffff">',
        f"<title>{escape(label)}</title>",
        f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="#6b7785"/></marker></defs>',
        f'<g class="edges" fill="none" stroke="#6b7785" stroke-width="1.4" '
        f'marker-end="url(#{marker})">',
    ]
    for route in geometry.routes:
        extra = ' stroke-dasharray="5 4"' if route.ordering_only or route.back else ""
        if route.back:
            extra += ' stroke="#c0392b"'
        kind = "edge back" if route.back else "edge"
        out.append(
            f'<path class="{kind}" data-source={quoteattr(route.source)} '
            f'data-target={quoteattr(route.target)} d="{_path(route)}"{extra}/>'
        )
    out.append(
        '</g><g class="nodes" stroke-width="1.6" text-anchor="middle" font-size="13" '
        'font-weight="600">'
    )
    for box in sorted(geometry.boxes.values(), key=lambda b: (b.layer, b.order)):
        node = by_id[box.id]
        status = statuses.get(box.id) if statuses else None
        fill, stroke = STATUS_PALETTE.get(status, _PLAIN) if status else _PLAIN
        if status:
            used.append(status)
        dash = ' stroke-dasharray="6 3"' if node.conditional else ""
        tip = f"{node.id} · {node.label}" + (f" · {status}" if status else "")
        if node.conditional:
            tip += " · conditional (when)"
        cls = f"node status-{status}" if status else "node"
        tx = box.x + box.width / 2
        out.append(
            f'<g class="{cls}" data-id={quoteattr(node.id)}'
            + (f' data-status="{escape(status)}"' if status else "")
            + f"><title>{escape(tip)}</title>"
            f'<rect x="{box.x:.0f}" y="{box.y:.0f}" width="{box.width:.0f}" '
            f'height="{box.height:.0f}" rx="7" fill="{fill}" stroke="{stroke}"{dash}/>'
            f'<text x="{tx:.0f}" y="{box.y + 19:.0f}" fill="#1f2933">'
            f"{escape(_fit(node.id, box.width, 7.4))}</text>"
            f'<text x="{tx:.0f}" y="{box.y + 36:.0f}" font-size="11" font-weight="400" '
            f'fill="#52606d">{escape(_fit(node.label, box.width, 6.4))}</text></g>'
        )
    out.append("</g>")
    if legend and shown:
        x, y = _MARGIN, geometry.height + 4
        for status in shown:
            fill, stroke = STATUS_PALETTE[status]
            out.append(
                f'<g class="legend"><rect x="{x:.0f}" y="{y:.0f}" width="12" height="12" rx="3" '
                f'fill="{fill}" stroke="{stroke}"/><text x="{x + 17:.0f}" y="{y + 10:.0f}" '
                f'font-size="11" fill="#3e4c59">{escape(status)}</text></g>'
            )
            x += 30 + 6.4 * len(status)
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- from a plan


class _StepLike(Protocol):
    id: str
    tool: str

    @property
    def when(self) -> Any: ...

    def data_dependencies(self) -> list[str]: ...

    def dependencies(self) -> list[str]: ...


class _PlanLike(Protocol):
    @property
    def steps(self) -> Sequence[_StepLike]: ...

    @property
    def goal(self) -> str: ...


def plan_graph(plan: _PlanLike) -> tuple[list[Node], list[Edge]]:
    """The nodes and edges of a plan (a :class:`~tooldag.plan.model.Plan`): a node per step
    (repeated ids after the first are left out), an edge per dependency on a known step."""
    nodes: dict[str, Node] = {}
    for step in plan.steps:
        nodes.setdefault(step.id, Node(step.id, step.tool, step.when is not None))
    edges: list[Edge] = []
    for step in plan.steps:
        data = set(step.data_dependencies())
        edges.extend(
            Edge(dep, step.id, ordering_only=dep not in data)
            for dep in step.dependencies()
            if dep in nodes
        )
    return list(nodes.values()), edges


def plan_svg(
    plan: _PlanLike, statuses: Mapping[str, str] | None = None, *, legend: bool = True
) -> str:
    """:func:`dag_svg` of a plan's graph, by step status when ``statuses`` is given."""
    nodes, edges = plan_graph(plan)
    goal = plan.goal.strip()
    title = f"{goal} ({len(nodes)} steps)" if goal else None
    return dag_svg(nodes, edges, statuses, title=title, legend=legend)
