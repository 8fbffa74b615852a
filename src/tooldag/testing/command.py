"""``python -m tooldag.testing``: the fake OpenAI server on its own, to try tooldag (or any
OpenAI client) by hand with no model and no key.

It prints the line to paste into another shell (``export OPENAI_BASE_URL=... OPENAI_API_KEY=...
TOOLDAG_MODEL=...``), then serves until Ctrl-C. ``--rules FILE`` answers each goal that contains
a text with a reply (a plan, or ``{"$error": 503}``, ``{"$stall": true}``,
``{"$disconnect": true}``: see :func:`~tooldag.testing.replies.item_from_json`);
``--error-on weather=503`` and ``--stall-on weather`` script the same from the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import threading
from typing import Any, NoReturn

from .replies import Disconnect, ErrorReply, Rule, ScriptItem, Stall, item_from_json
from .script import DIALECTS, current_goal
from .server import FakeLLMServer

__all__ = ["build_server", "main", "parser"]

_EXAMPLES = """\
examples:
  python -m tooldag.testing --rules rules.json
      rules.json: {"weather": {"steps": [...]}, "slow": {"$stall": true},
                   "broken": {"$error": 503, "message": "overloaded"}}
  python -m tooldag.testing --error-on weather=503x2 --stall-on tokyo
      the first two requests for a goal with "weather" get HTTP 503 (tooldag
      retries), a goal with "tokyo" gets no answer until the client gives up
      (TOOLDAG_LLM_TIMEOUT=5: after 5 s)

A rule matches the current goal (the "Goal:" line of the latest message), not
the earlier goals a chat shows. --error-on and --stall-on come first, then the
rules of --rules in order, then --default.
"""

# What an unscripted server answers: the probe of `tooldag doctor` as it asks, a goal with a
# plan that says how to script one (so that `tooldag run` against a bare server is not an error).
_PROBE = '{"ok": true}'


def _unscripted(body: dict[str, Any]) -> Any:
    goal = current_goal(body)
    if _PROBE in goal:
        return {"ok": True}
    return {
        "goal": goal,
        "steps": [],
        "answer": "(fake server) No rule answers this goal: start python -m tooldag.testing "
        "with --rules FILE to script its plan.",
    }


def _error_rule(text: str) -> Rule:
    """``TEXT=STATUS`` or ``TEXT=STATUSxN`` (only the first N requests) as a rule."""
    goal, sep, status = text.rpartition("=")
    count, _, times = status.lower().partition("x")
    try:
        code = int(count)
        limit = int(times) if times else None
    except ValueError:
        code, limit = 0, None
    if not sep or not 400 <= code <= 599 or (limit is not None and limit < 1):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give TEXT=STATUS with a status from 400 to 599, as weather=503, or "
            "TEXT=STATUSxN to fail only the first N requests, as weather=503x2"
        )
    return Rule(goal, ErrorReply(code, f"scripted error {code} (--error-on {text})"), limit)


def _stall_rule(text: str) -> Rule:
    """``TEXT`` (until the client gives up) or ``TEXT=SECONDS`` as a rule."""
    goal, sep, seconds = text.rpartition("=")
    if not sep:
        return Rule(text, Stall(None))
    try:
        wait = float(seconds)
    except ValueError:
        wait = 0.0
    if not wait > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give TEXT (no answer until the client gives up) or TEXT=SECONDS, as "
            "weather=30"
        )
    return Rule(goal, Stall(wait))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tooldag.testing",
        description="Serve scripted OpenAI chat completions on 127.0.0.1, and print the\n"
        "environment that points tooldag (or any OpenAI client) at them.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--rules",
        metavar="FILE",
        help='JSON: goal text -> reply (a plan, {"$error": STATUS}, {"$stall": true or '
        'SECONDS}, {"$disconnect": true})',
    )
    p.add_argument("--default", metavar="FILE", help="JSON: the reply when no rule matches")
    p.add_argument(
        "--error-on",
        action="append",
        default=[],
        type=_error_rule,
        metavar="TEXT=STATUS",
        help="answer goals containing TEXT with this HTTP status (TEXT=STATUSxN: the first N "
        "only); repeatable",
    )
    p.add_argument(
        "--stall-on",
        action="append",
        default=[],
        type=_stall_rule,
        metavar="TEXT",
        help="leave goals containing TEXT unanswered until the client gives up "
        "(TEXT=SECONDS: then drop the connection); repeatable",
    )
    p.add_argument("--port", type=int, default=0, help="the port (default: a free one)")
    p.add_argument("--model", default="fake-model", help="the model it names (fake-model)")
    p.add_argument(
        "--dialect",
        choices=sorted(DIALECTS),
        metavar="NAME",
        help=f"behave as this server does: {', '.join(sorted(DIALECTS))} (default: none)",
    )
    p.add_argument(
        "--context-window", type=int, metavar="TOKENS", help="emulate this context window"
    )
    p.add_argument(
        "--stall", type=float, metavar="SECONDS", help="hold every completion this long unanswered"
    )
    p.add_argument(
        "--token-rate", type=float, metavar="N", help="stream replies at N tokens a second"
    )
    p.add_argument(
        "--chunk-size", type=int, default=16, metavar="CHARS", help="characters a streamed piece"
    )
    return p


def _load(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise SystemExit(f"python -m tooldag.testing: cannot read {what} {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"python -m tooldag.testing: {what} {path} is not JSON: {exc}") from None


def _bad(path: str, why: str) -> NoReturn:
    raise SystemExit(f"python -m tooldag.testing: {path}: {why}")


def build_server(args: argparse.Namespace) -> FakeLLMServer:
    """The server that :func:`parser`'s ``args`` describe (not started). ``SystemExit`` with the
    reason when a file cannot be read or holds a reply that is not one."""
    rules: list[Rule] = [*args.error_on, *args.stall_on]
    default: ScriptItem | None = None if args.rules else _unscripted
    if args.rules:
        data = _load(args.rules, "the rules file")
        if not isinstance(data, dict):
            _bad(args.rules, 'it holds an object of goal text -> reply, as {"weather": {...}}')
        try:
            rules += [Rule(k, item_from_json(v, f"rule {k!r}")) for k, v in data.items()]
        except ValueError as exc:
            _bad(args.rules, str(exc))
    if args.default:
        try:
            default = item_from_json(_load(args.default, "the default file"), "the default")
        except ValueError as exc:
            _bad(args.default, str(exc))
    return FakeLLMServer(
        rules=rules,
        default=default,
        model=args.model,
        port=args.port,
        dialect=args.dialect,
        context_window=args.context_window,
        stall=args.stall,
        token_rate=args.token_rate,
        chunk_size=args.chunk_size,
    )


def export_line(server: FakeLLMServer) -> str:
    """``export OPENAI_BASE_URL=... OPENAI_API_KEY=... TOOLDAG_MODEL=...`` for a shell."""
    pairs = (f"{name}={shlex.quote(value)}" for name, value in server.env().items())
    return "export " + " ".join(pairs)


def _describe(rule: Rule) -> str:
    reply = rule.reply
    if isinstance(reply, ErrorReply):
        what = f"HTTP {reply.status}"
    elif isinstance(reply, Stall):
        what = "no answer" + (f" for {reply.seconds:g}s" if reply.seconds else "")
    elif isinstance(reply, Disconnect):
        what = "a dropped connection"
    else:
        what = "a reply"
    times = f" to the first {rule.times}" if rule.times is not None else ""
    return f"{rule.contains!r}: {what}{times}"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    server = build_server(args)
    with server:
        print(export_line(server), flush=True)
        notes = [
            f"fake OpenAI server on {server.base_url} ({server.model}); Ctrl-C stops it",
            "paste the line above into the shell that runs tooldag",
        ]
        if server.rules:
            notes.append("rules, the first that matches answers:")
            notes += [f"  {_describe(rule)}" for rule in server.rules]
        if args.stall or any(isinstance(r.reply, Stall) for r in server.rules):
            notes.append(
                "a stalled request waits for the client to give up: Ctrl-C, or after 5 s\n"
                "with TOOLDAG_LLM_TIMEOUT=5 (tooldag --llm-timeout 5)"
            )
        print("\n".join(notes), file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0
