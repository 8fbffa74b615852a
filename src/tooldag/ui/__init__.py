"""The faces: the command line (:mod:`~tooldag.ui.cli`), the REPL (:mod:`~tooldag.ui.repl`), the
terminal views they share (:mod:`~tooldag.ui.views`), step approval (:mod:`~tooldag.ui.approval`)
and the offline demo (:mod:`~tooldag.ui.demo`). They hold no logic a library user would need:
they call the library. The package imports nothing itself (prompt_toolkit is slow to import).
"""

__all__: list[str] = []
