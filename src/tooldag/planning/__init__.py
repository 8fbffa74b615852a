"""Planning: ask the LLM for a plan, re-ask with the validator's issues, replan after a failure.

:mod:`~tooldag.planning.planner` holds the loop, :mod:`~tooldag.planning.prompting` renders the
Jinja2 templates of ``tooldag.prompts``, and :mod:`~tooldag.planning.plan_schema` the JSON Schema
of a plan for structured output. Nothing here runs a tool. The package itself imports nothing, so
that the plan schema can be had without the ``openai`` SDK.
"""

__all__: list[str] = []
