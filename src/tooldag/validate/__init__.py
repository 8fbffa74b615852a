"""The validator: the only judge of a plan. ``validate(plan, registry)`` returns issues (errors
and warnings: ``tooldag.errors_of`` picks what stops a plan), never raises; ``flows(plan,
registry)`` finds where private or untrusted data can leave the machine.

:mod:`~tooldag.validate.validator` walks the plan and owns the state of one validation; what it
judges is in :mod:`~tooldag.validate._references` (``$step.path`` against the steps and their
output schemas), :mod:`~tooldag.validate._args` (arguments against the tools' schemas) and
:mod:`~tooldag.validate._conditions` (the ``when`` conditions), which all report through
:mod:`~tooldag.validate._report`. :mod:`~tooldag.validate.flows` is the data-flow analysis: its
findings are not errors, and ``validate`` never mixes them in.
"""

from .flows import Flow, flow_issues, flows
from .validator import ISSUE_CODES, WARNING_CODES, check_plan, validate

__all__ = [
    "Flow",
    "ISSUE_CODES",
    "WARNING_CODES",
    "check_plan",
    "flow_issues",
    "flows",
    "validate",
]
