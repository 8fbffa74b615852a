"""The public API: ``tooldag.__all__`` is sorted, complete for what it promises, and importable."""

from __future__ import annotations

import importlib
import pkgutil

import tooldag


def test_all_is_sorted_and_unique() -> None:
    assert tooldag.__all__ == sorted(tooldag.__all__)
    assert len(set(tooldag.__all__)) == len(tooldag.__all__)


def test_every_public_name_is_importable() -> None:
    for name in tooldag.__all__:
        assert getattr(tooldag, name) is not None, name


def test_every_module_declares_a_sorted_all() -> None:
    for info in pkgutil.walk_packages(tooldag.__path__, "tooldag."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{info.name} has no __all__"
        assert list(exported) == sorted(exported), f"{info.name}.__all__ is not sorted"
        for name in exported:
            assert hasattr(module, name), f"{info.name}.__all__ names missing {name}"


def test_the_data_flow_policy_is_public() -> None:
    # What a library user needs to write an approve_step hook and to read its findings.
    from tooldag.execution import Verdict
    from tooldag.execution.policy import Policy, StepApproval
    from tooldag.validate import Flow, flows

    assert (tooldag.Flow, tooldag.flows) == (Flow, flows)
    assert (tooldag.Policy, tooldag.StepApproval, tooldag.Verdict) == (
        Policy,
        StepApproval,
        Verdict,
    )


def test_errors_form_one_tree() -> None:
    from tooldag import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, tooldag.TooldagError), name
