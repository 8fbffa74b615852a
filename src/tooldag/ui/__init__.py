"""The faces: the command line (:mod:`~tooldag.ui.cli`), the REPL (:mod:`~tooldag.ui.repl`), the
terminal views they share (:mod:`~tooldag.ui.views`: one look per thing, e.g. one view of a stored
run), what Ctrl-C does while a run goes (:mod:`~tooldag.ui.interrupts`), step approval
(:mod:`~tooldag.ui.approval`) and the offline demo (:mod:`~tooldag.ui.demo`). They hold no logic a
library user would need: they call the library. The package imports nothing itself
(prompt_toolkit is slow to import).
"""

__all__: list[str] = []
