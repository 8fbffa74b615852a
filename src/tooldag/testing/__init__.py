"""Test helpers that speak the real OpenAI chat-completions protocol.

:class:`FakeLLMServer` is an HTTP server on 127.0.0.1 for subprocess tests, notebooks and
``tooldag demo``; :func:`mock_openai` plays the same script in-process through respx. Both
replay scripted replies (plain or streamed, with usage), error statuses and goal rules, and
record every request.
"""

from __future__ import annotations

from .replies import Disconnect, ErrorReply, Hold, Reply, Rule, ScriptItem, Stall
from .respx_helpers import mock_openai
from .script import ScriptedLLM
from .server import FakeLLMServer

__all__ = [
    "Disconnect",
    "ErrorReply",
    "FakeLLMServer",
    "Hold",
    "Reply",
    "Rule",
    "ScriptItem",
    "ScriptedLLM",
    "Stall",
    "mock_openai",
]
