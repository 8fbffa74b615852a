"""The plan: the JSON a planner writes and the validator and executor read.

:mod:`~tooldag.plan.model` holds the canonical models (:class:`Plan`, :class:`Step`,
:class:`Condition`); :mod:`~tooldag.plan.refs` the ``$step.path`` references,
:mod:`~tooldag.plan.conditions` how ``when`` is evaluated, :mod:`~tooldag.plan.parse` the lenient
parser from LLM text, and :mod:`~tooldag.plan.reuse` which completed steps a new plan may reuse.
"""

from .model import CONDITION_OPS, Condition, Plan, Step

__all__ = ["CONDITION_OPS", "Condition", "Plan", "Step"]
