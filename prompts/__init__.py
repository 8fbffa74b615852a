"""tooldag's prompt templates (``*.j2``), installed as ``tooldag.prompts``.

This is the only place prompt text lives.
"""

__all__: list[str] = []
