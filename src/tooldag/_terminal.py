"""Text from tools, plans and the LLM made safe to show on a terminal.

A tool's output, an LLM's answer or an error message can carry terminal control sequences: an
ESC starts one (``\\x1b]52;c;...`` writes the clipboard, ``\\x1b]0;...`` the window title, CSI
moves the cursor and rewrites what is on the screen), and so do the C1 controls (``\\x9b`` is a
CSI by itself on many terminals). rich passes them straight through, so every view escapes the
text it did not write itself with :func:`printable` before it reaches the terminal: such a
character is shown as ``\\x1b``, visibly and harmlessly. Newlines and tabs stay as they are.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls but tab and newline (CR too: it moves back over what is on the line), DEL, and the
# C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab written as ``\\xNN``."""
    if _CONTROL.search(text) is None:  # the common case costs one scan, no copy
        return text
    return _CONTROL.sub(_escape, text)
