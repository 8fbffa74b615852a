"""The LLM client: any OpenAI-compatible endpoint through the ``openai`` SDK.

:mod:`~tooldag.llm.client` holds the configuration, the output modes and the retry policy;
:mod:`~tooldag.llm._responses` reads completions and API errors. Importing this package imports
the ``openai`` SDK (about half a second): ``import tooldag`` does not, until it is needed.
"""

from .client import DEFAULT_MODEL, LLMClient, LLMReply, Messages, OutputMode, UsageMeter

__all__ = ["DEFAULT_MODEL", "LLMClient", "LLMReply", "Messages", "OutputMode", "UsageMeter"]
