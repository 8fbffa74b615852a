"""``tooldag doctor``: what the configured LLM endpoint supports, found by asking it.

It lists the models, tries each output mode with one tiny request, streams once, counts the
tokens of the planner's system prompt over ``--tools`` and finds the server's context window where
the server says it. What it finds is remembered for the endpoint (``auto`` starts with the best
mode that worked). Exit 0 when the endpoint can plan, 1 when it cannot (unreachable, no mode
works, or the prompt does not fit), 2 when nothing is configured.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from rich.table import Table

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    add_llm_options,
    add_tools_option,
    console,
    examples,
    llm_from_args,
    print_json,
    registry_from_args,
)

__all__ = ["register"]

_EXAMPLES = examples(
    ("tooldag doctor", "the endpoint of OPENAI_BASE_URL"),
    "tooldag doctor --base-url http://localhost:8080/v1 --model qwen2.5-coder",
    ("tooldag doctor --tools calc --tools time --json", "prompt size with two packs only"),
)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="probe the LLM endpoint: models, output modes, streaming, prompt size, context",
        description="Ask the configured OpenAI-compatible endpoint what it supports: the models "
        "it lists, which output modes it accepts (one tiny request each), streaming and usage, "
        "the tokens of the planner's system prompt over --tools and the server's context window. "
        "What it finds is remembered for the endpoint.",
        epilog=_EXAMPLES,
    )
    add_tools_option(p)
    add_llm_options(p)
    p.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    p.set_defaults(handler=cmd_doctor)


def _yes(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "unknown" if value is None else yes if value else no


def _rows(report: Any, tools: int) -> list[tuple[str, str]]:
    rows = [("endpoint", f"{report.base_url} · model {report.model}")]
    if report.error is not None:
        return [*rows, ("error", report.error)]
    rows.append(("server", report.server or "unknown (an OpenAI-compatible server)"))
    if report.models is None:
        rows.append(("models", "not listed (/v1/models did not answer)"))
    else:
        shown = ", ".join(report.models[:6]) + (" ..." if len(report.models) > 6 else "")
        listed = {True: "listed", False: "NOT listed", None: "any name served"}
        rows.append(("models", f"{shown or 'none'} ({report.model} {listed[report.model_listed]})"))
    for check in report.modes:
        rows.append((f"mode {check.mode}", "accepted" if check.accepted else check.detail))
    rows.append(("auto uses", report.auto_mode or "nothing: no mode works"))
    stream = _yes(report.streaming)
    if report.streaming:
        stream += f", usage in the stream: {_yes(report.stream_usage)}"
    rows.append(("streaming", stream))
    rows.append(("usage", _yes(report.usage_reported, "reported", "not reported (estimated)")))
    if report.prompt_tokens is not None:
        source = report.prompt_tokens_source
        rows.append(("system prompt", f"{report.prompt_tokens:,} tokens, {tools} tools ({source})"))
    if report.context_window is not None:
        context = f"{report.context_window:,} tokens ({report.context_source})"
    else:
        context = "unknown" + (f": {report.context_note}" if report.context_note else "")
    rows.append(("context", context))
    if report.fits is not None:
        need = f"{report.prompt_tokens:,} + a plan of up to {report.reply_tokens:,}"
        verdict = (
            f"fits ({need} of {report.context_window:,})"
            if report.fits
            else f"DOES NOT FIT: {need} > {report.context_window:,}: raise the server's context "
            "(llama.cpp -c / --ctx-size, Ollama num_ctx, vLLM --max-model-len) or use fewer "
            "tools (--tools)"
        )
        rows.append(("prompt + plan", verdict))
    rows.append(("remembered in", report.memory_path))
    return rows


def cmd_doctor(args: argparse.Namespace) -> int:
    from ...llm.probe import probe_endpoint
    from ...planning.plan_schema import planner_tools
    from ...planning.prompting import system_prompt

    llm = llm_from_args(args)
    registry = registry_from_args(args)
    prompt = system_prompt(registry)

    async def probe() -> Any:
        try:
            return await probe_endpoint(llm, system_prompt=prompt)
        finally:
            await llm.aclose()

    report = asyncio.run(probe())
    if args.json:
        print_json(report.to_json())
    else:
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for name, value in _rows(report, len(planner_tools(registry))):
            style = "red" if value.startswith(("DOES NOT", "nothing", "NOT")) else None
            table.add_row(name, value, style=style)
        console.print(table)
    return EXIT_OK if report.usable else EXIT_FAILED
