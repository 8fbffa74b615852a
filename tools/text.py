"""Text pack: summarise a text and extract information from it, with the configured LLM.

The LLM is the one the rest of tooldag uses, configured from the environment
(:meth:`tooldag.LLMClient.from_env`: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
``TOOLDAG_MODEL``, ...). The prompts are ``prompts/text_summarize.j2`` and
``prompts/text_extract.j2``; the text goes in as delimited data, never as template or as
instructions. A text longer than ``TOOLDAG_TEXT_MAX_CHARS`` (default 60000) is cut to that
before it is sent, and the output says so.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import (
    BudgetExceededError,
    LLMConfigError,
    LLMError,
    PermanentToolError,
    ToolError,
    TransientToolError,
)
from tooldag.llm import LLMClient
from tooldag.planning.prompting import delimit, render
from tooldag.registry import RetryPolicy, tool

from ._common import env_int, truncate

__all__ = ["Extraction", "Summary", "extract", "new_client", "summarize"]

_NOT_FOUND = "NOT FOUND"
# The LLM client already retries transient API errors itself; one more try at this level is
# enough to ride out a longer outage without multiplying the attempts.
_RETRY = RetryPolicy(attempts=2, initial_backoff=2.0, max_backoff=10.0)
_TRANSIENT_STATUSES = frozenset({408, 409, 429})
# The text goes to the configured LLM, which tooldag trusts as it trusts the planner (it reads the
# goal, the plan and, on a replan, the steps' outputs): no egress. What the answer carries is what
# the text carried, and the flow analysis follows it through: no capability of their own.
_text_tool = tool(
    category="text",
    side_effects=False,
    idempotent=True,
    timeout=180.0,
    retry=_RETRY,
    reads_private=False,
    egress=False,
    untrusted_output=False,
)

InputText = Annotated[str, Field(min_length=1, max_length=1_000_000)]


def new_client() -> LLMClient:
    """The client the text tools call (a seam: tests and embedders may replace it)."""
    return LLMClient.from_env()


def _as_tool_error(exc: LLMError) -> ToolError:
    if isinstance(exc, LLMConfigError | BudgetExceededError):
        return PermanentToolError(str(exc))
    status = exc.status_code
    if status is None or status >= 500 or status in _TRANSIENT_STATUSES:
        return TransientToolError(f"the LLM call failed: {exc}")
    return PermanentToolError(f"the LLM call failed: {exc}")


async def _ask(template: str, text: str, **variables: object) -> tuple[str, bool]:
    """The LLM's reply to ``template`` about ``text``, and whether ``text`` had to be cut."""
    budget = env_int("TOOLDAG_TEXT_MAX_CHARS", 60_000, minimum=1000)
    document, cut = truncate(text, budget)
    prompt = render(template, document=delimit("text", document), **variables)
    try:
        client = new_client()
    except LLMError as exc:
        raise _as_tool_error(exc) from None
    try:
        reply = await client.complete([{"role": "user", "content": prompt}])
    except LLMError as exc:
        raise _as_tool_error(exc) from None
    finally:
        await client.aclose()
    answer = reply.text.strip()
    if not answer:
        raise TransientToolError("the LLM sent an empty reply; try again")
    return answer, cut


def _words(text: str) -> list[str]:
    return text.split()


class Summary(TypedDict):
    summary: str
    word_count: int
    input_truncated: Annotated[
        bool, Field(description="True if the text was too long and only its start was read")
    ]


@_text_tool
async def summarize(
    text: InputText,
    max_words: Annotated[int, Field(ge=5, le=2000)] = 100,
) -> Summary:
    """Summarise a text in at most max_words words (uses the LLM).

    Args:
        text: The text to summarise, e.g. a page from http_get or wikipedia_page.
        max_words: The longest the summary may be, in words.
    """
    words = _words(text)
    if len(words) <= max_words:  # already short enough: no need to spend an LLM call
        return Summary(summary=text.strip(), word_count=len(words), input_truncated=False)
    answer, cut = await _ask("text_summarize.j2", text, max_words=max_words)
    summary_words = _words(answer)
    if len(summary_words) > max_words:  # models overshoot word limits; the limit is a promise
        answer = " ".join(summary_words[:max_words]).rstrip(",;:") + " …"
        summary_words = summary_words[:max_words]
    return Summary(summary=answer, word_count=len(summary_words), input_truncated=cut)


class Extraction(TypedDict):
    result: Annotated[str, Field(description="What was extracted ('' if nothing was found)")]
    found: Annotated[bool, Field(description="False if the text does not contain it")]
    input_truncated: Annotated[
        bool, Field(description="True if the text was too long and only its start was read")
    ]


@_text_tool
async def extract(
    text: InputText,
    instruction: Annotated[str, Field(min_length=1, max_length=2000)],
) -> Extraction:
    """Extract information from a text as an instruction says, e.g. "the author's birth date"
    or "every email address, one per line" (uses the LLM).

    Args:
        text: The text to read.
        instruction: What to extract.
    """
    answer, cut = await _ask("text_extract.j2", text, instruction=instruction)
    found = answer.strip().rstrip(".").upper() != _NOT_FOUND
    return Extraction(result=answer if found else "", found=found, input_truncated=cut)


TOOLS = [summarize, extract]
