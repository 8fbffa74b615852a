"""Node, edge and argument F1 (TaskBench's definitions) and percentiles, on tiny plans whose
figures are worked out by hand in the comments."""

from __future__ import annotations

import pytest

from tooldag import Plan
from tooldag.evaluation.metrics import (
    Counts,
    argument_counts,
    edge_counts,
    edges,
    node_counts,
    nodes,
    percentile,
)


def plan(
    *steps: tuple[str, str, dict[str, object]], depends: dict[str, list[str]] | None = None
) -> Plan:
    depends = depends or {}
    return Plan.model_validate(
        {
            "steps": [
                {"id": i, "tool": t, "args": a, "depends_on": depends.get(i, [])}
                for i, t, a in steps
            ]
        }
    )


# gold: search -> summarize -> translate, and search -> translate (a DAG of 3 nodes, 3 edges)
GOLD = plan(
    ("s", "search", {"q": "tooldag"}),
    ("m", "summarize", {"text": "$s.text"}),
    ("t", "translate", {"text": "${m.summary} and ${s.title}", "to": "fr"}),
)


def test_nodes_and_edges_of_a_plan_are_tool_names() -> None:
    assert nodes(GOLD) == {"search", "summarize", "translate"}
    assert edges(GOLD) == {
        ("search", "summarize"),
        ("summarize", "translate"),
        ("search", "translate"),
    }


def test_the_same_plan_with_other_step_ids_scores_one() -> None:
    renamed = plan(
        ("a", "search", {"q": "tooldag"}),
        ("b", "summarize", {"text": "$a.text"}),
        ("c", "translate", {"text": "${b.summary} and ${a.title}", "to": "fr"}),
    )
    assert node_counts(renamed, GOLD).f1 == 1.0
    assert edge_counts(renamed, GOLD).f1 == 1.0
    assert argument_counts(renamed, GOLD).f1 == 1.0


def test_a_missing_and_a_hallucinated_tool() -> None:
    # predicted: search -> translate, and a made-up "shout"; summarize is missing.
    predicted = plan(
        ("s", "search", {"q": "tooldag"}),
        ("t", "translate", {"text": "$s.text", "to": "fr"}),
        ("x", "shout", {"text": "$t.text"}),
    )
    nodes_ = node_counts(predicted, GOLD)
    # {search, translate, shout} vs {search, summarize, translate}: TP 2, FP 1 (shout), FN 1.
    assert nodes_ == Counts(tp=2, fp=1, fn=1)
    assert nodes_.precision == pytest.approx(2 / 3)
    assert nodes_.recall == pytest.approx(2 / 3)
    assert nodes_.f1 == pytest.approx(2 / 3)  # 2*2 / (2*2 + 1 + 1)
    edges_ = edge_counts(predicted, GOLD)
    # {(search, translate), (translate, shout)} vs the gold three: TP 1, FP 1, FN 2.
    assert edges_ == Counts(tp=1, fp=1, fn=2)
    assert edges_.f1 == pytest.approx(2 / 5)  # 2*1 / (2*1 + 1 + 2)


def test_tool_names_count_as_a_set_not_a_multiset() -> None:
    # TaskBench's flatten() builds a set per sample: calling a tool twice counts once.
    twice = plan(("a", "calculate", {"expression": "1+1"}), ("b", "calculate", {"expression": "2"}))
    once = plan(("c", "calculate", {"expression": "1+1"}))
    assert node_counts(twice, once) == Counts(tp=1)
    assert node_counts(twice, once).f1 == 1.0


def test_depends_on_is_an_edge_too() -> None:
    gold = plan(
        ("w", "write_file", {"path": "x"}), ("r", "read_file", {"path": "x"}), depends={"r": ["w"]}
    )
    unordered = plan(("w", "write_file", {"path": "x"}), ("r", "read_file", {"path": "x"}))
    assert edges(gold) == {("write_file", "read_file")}
    assert edge_counts(unordered, gold) == Counts(fn=1)
    assert edge_counts(unordered, gold).f1 == 0.0


def test_no_edges_on_either_side_is_nothing_to_score() -> None:
    one = plan(("a", "calculate", {"expression": "1"}))
    counts = edge_counts(one, one)
    assert counts.empty and counts.f1 is None
    # ...and pooled with a goal that has edges, it changes nothing.
    assert (counts + Counts(tp=1, fn=1)).f1 == pytest.approx(2 / 3)


def test_no_plan_at_all_misses_everything() -> None:
    assert node_counts(None, GOLD) == Counts(fn=3)
    assert node_counts(None, GOLD).f1 == 0.0
    assert edge_counts(None, GOLD).f1 == 0.0


def test_pooling_sums_counts_before_f1_micro_not_macro() -> None:
    a = Counts(tp=1, fp=0, fn=0)  # F1 1.0
    b = Counts(tp=1, fp=3, fn=0)  # F1 2/5
    pooled = Counts.total([a, b, None])
    assert pooled == Counts(tp=2, fp=3, fn=0)
    assert pooled.f1 == pytest.approx(4 / 7)  # not the mean of 1.0 and 0.4 (0.7)


def test_argument_f1_compares_tool_argument_value_with_references_grounded() -> None:
    # "to": "de" instead of "fr"; the references point at the same tools under other ids.
    predicted = plan(
        ("x", "search", {"q": "tooldag"}),
        ("y", "summarize", {"text": "$x.text"}),
        ("z", "translate", {"text": "${y.summary} and ${x.title}", "to": "de"}),
    )
    counts = argument_counts(predicted, GOLD)
    # gold triples: (search,q), (summarize,text), (translate,text), (translate,to=fr)
    assert counts == Counts(tp=3, fp=1, fn=1)
    assert counts.f1 == pytest.approx(6 / 8)


def test_percentiles_interpolate_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # sorted 1, 2, 3, 4
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 95) == pytest.approx(3.85)  # rank 2.85: 3 + 0.85 * (4 - 3)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)
