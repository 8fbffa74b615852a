"""The validator: the only judge of a plan. ``validate(plan, registry)`` returns issues, never
raises.

:mod:`~tooldag.validate.validator` walks the plan; :mod:`~tooldag.validate._args` checks arguments
against the tools' schemas and :mod:`~tooldag.validate._conditions` the ``when`` conditions.
"""

from .validator import ISSUE_CODES, check_plan, validate

__all__ = ["ISSUE_CODES", "check_plan", "validate"]
