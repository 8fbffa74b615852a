"""Test helpers: a fake OpenAI-compatible server and a respx helper (filled in by the planner work)."""

__all__: list[str] = []
