"""Observing runs: consumers of events and results that show what a run did.

:mod:`~tooldag.observe.monitor` keeps the summary and timeline, :mod:`~tooldag.observe.mermaid`
draws a plan or run as a Mermaid flowchart, and :mod:`~tooldag.observe.plotting` the matplotlib
charts of the notebooks (matplotlib is imported only when a chart is drawn).
"""

from .mermaid import to_mermaid
from .monitor import Monitor

__all__ = ["Monitor", "to_mermaid"]
