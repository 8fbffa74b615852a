"""What an endpoint supports, found by asking it (``tooldag doctor``): the models it lists, the
output modes it accepts (one tiny request each), streaming, usage, the tokens of the planner's
system prompt and the server's context window where it says (vLLM's ``max_model_len`` in
``/v1/models``, llama-server's ``/props``, Ollama's ``/api/show``).

What it finds is written to the endpoint memory (:mod:`tooldag.llm.endpoints`): ``auto`` then
starts with the best mode that worked, and calls warn before a prompt that will not fit.

>>> report = await probe_endpoint(LLMClient.from_env(), system_prompt=text)  # doctest: +SKIP
>>> report.auto_mode, report.context_window                                   # doctest: +SKIP
('json_object_schema', 2048)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import openai

from ._responses import Completion, context_overflow, error_text, estimate_tokens, rejects_mode
from .client import (
    _AUTO_ORDER,
    EXPECTED_REPLY_TOKENS,
    LLMClient,
    OutputMode,
    context_from_models,
    model_is_listed,
)

__all__ = ["EndpointReport", "ModeCheck", "PROBE_SCHEMA", "probe_endpoint"]

PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
_PROBE = 'Reply with the JSON object {"ok": true} and nothing else.'
_SAMPLE_GOAL = "What is 17% of 2,340?"
_TIMEOUT = 10.0  # for the routes that only describe the server (they answer at once)


@dataclass(slots=True)
class ModeCheck:
    """One output mode tried: accepted, or refused with the server's reason."""

    mode: str
    accepted: bool
    detail: str = ""


@dataclass(slots=True)
class EndpointReport:
    """What :func:`probe_endpoint` found. ``None`` means could not be told."""

    base_url: str
    model: str
    error: str | None = None
    """Set when the endpoint could not be reached at all."""
    server: str | None = None
    models: list[str] | None = None
    model_listed: bool | None = None
    modes: list[ModeCheck] = field(default_factory=list)
    auto_mode: str | None = None
    streaming: bool | None = None
    stream_usage: bool | None = None
    usage_reported: bool | None = None
    prompt_tokens: int | None = None
    prompt_tokens_source: str | None = None
    context_window: int | None = None
    context_source: str | None = None
    context_note: str | None = None
    reply_tokens: int = EXPECTED_REPLY_TOKENS
    memory_path: str = ""

    @property
    def fits(self) -> bool | None:
        """Whether the system prompt and a plan fit the context window (None: unknown)."""
        if self.context_window is None or self.prompt_tokens is None:
            return None
        return self.prompt_tokens + self.reply_tokens <= self.context_window

    @property
    def usable(self) -> bool:
        """Reachable, some output mode works, and the prompt fits as far as can be told."""
        return self.error is None and self.auto_mode is not None and self.fits is not False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fits"] = self.fits
        data["usable"] = self.usable
        return data


def _root(url: str) -> str:
    """The server root of an OpenAI-style base URL (``http://host:8080/v1`` -> ``http://host:8080``)."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


async def _sdk(llm: LLMClient, call: Callable[[Any], Any]) -> Any:
    """Run ``call(sdk_client)``, awaiting it or, for an injected sync client, in a thread."""
    client = llm._client()
    if isinstance(client, openai.OpenAI):
        return await asyncio.to_thread(call, client)
    return await call(client)


async def _route(llm: LLMClient, method: str, path: str, body: Any = None) -> Any:
    """JSON from one of the server's own routes (``/props``, ``/api/show``...), or None."""
    root = _root(str(llm._client().base_url))
    options: Any = {"timeout": _TIMEOUT}
    try:
        if method == "GET":
            return await _sdk(llm, lambda c: c.get(root + path, cast_to=object, options=options))
        return await _sdk(
            llm, lambda c: c.post(root + path, body=body, cast_to=object, options=options)
        )
    except (openai.APIError, ValueError):
        return None


async def _once(llm: LLMClient, kwargs: dict[str, Any], stream: bool = False) -> Completion:
    pieces: list[str] = []
    return await llm._call_once(kwargs, pieces.append if stream else None)


def _request(llm: LLMClient, messages: list[dict[str, str]], limit: int) -> dict[str, Any]:
    return llm._request(messages, 0.0, limit, False)


def _one_line(exc: openai.APIError) -> str:
    status = getattr(exc, "status_code", None)
    text = " ".join(error_text(exc).split())
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{status}: {text}" if status else text


async def _modes(llm: LLMClient, report: EndpointReport) -> None:
    modes = list(_AUTO_ORDER)
    if report.server == "vLLM":  # others ignore these fields: "accepted" would mean nothing
        modes[1:1] = [OutputMode.STRUCTURED_OUTPUTS, OutputMode.GUIDED_JSON]
    for mode in modes:
        kwargs = {
            **_request(llm, [{"role": "user", "content": _PROBE}], 16),
            **llm.mode_fields(mode, PROBE_SCHEMA, "probe"),
        }
        try:
            completion = await _once(llm, kwargs)
        except openai.APIStatusError as exc:
            refused = "refused" if rejects_mode(exc, mode.value) else "failed"
            report.modes.append(ModeCheck(mode.value, False, f"{refused} ({_one_line(exc)})"))
            continue
        except openai.APIError as exc:
            report.modes.append(ModeCheck(mode.value, False, f"failed ({_one_line(exc)})"))
            continue
        report.modes.append(ModeCheck(mode.value, True))
        if mode is OutputMode.TEXT:
            report.usage_reported = completion.usage is not None
    accepted = {m.mode for m in report.modes if m.accepted}
    report.auto_mode = next((m.value for m in _AUTO_ORDER if m.value in accepted), None)


async def _streaming(llm: LLMClient, report: EndpointReport) -> None:
    kwargs = _request(llm, [{"role": "user", "content": _PROBE}], 16)
    kwargs.update(stream=True, stream_options={"include_usage": True})
    try:
        completion = await _once(llm, kwargs, stream=True)
    except openai.APIError:
        report.streaming = False
        return
    report.streaming = True
    report.stream_usage = completion.usage is not None


async def _context(llm: LLMClient, report: EndpointReport, owners: set[str]) -> None:
    """The server's kind and context window, from whichever of its own routes answers."""
    props = await _route(llm, "GET", "/props")
    if isinstance(props, Mapping) and ("default_generation_settings" in props or "n_ctx" in props):
        report.server = "llama.cpp llama-server"
        settings = props.get("default_generation_settings")
        n_ctx = settings.get("n_ctx") if isinstance(settings, Mapping) else props.get("n_ctx")
        if isinstance(n_ctx, int) and n_ctx > 0:
            report.context_window, report.context_source = n_ctx, "/props n_ctx"
        return
    if report.context_window is not None or "vllm" in owners:
        report.server = "vLLM"
        return
    show = await _route(llm, "POST", "/api/show", {"model": llm.model})
    if isinstance(show, Mapping) and ("model_info" in show or "parameters" in show):
        report.server = "Ollama"
        for line in str(show.get("parameters") or "").splitlines():
            name, _, value = line.partition(" ")
            if name == "num_ctx" and value.strip().isdigit():
                report.context_window = int(value.strip())
                report.context_source = "/api/show num_ctx"
        info = show.get("model_info")
        trained = (
            next(
                (
                    v
                    for k, v in info.items()
                    if k.endswith(".context_length") and isinstance(v, int)
                ),
                None,
            )
            if isinstance(info, Mapping)
            else None
        )
        if report.context_window is None:
            report.context_note = (
                "Ollama runs a model with its num_ctx (OLLAMA_CONTEXT_LENGTH; 2048 or 4096 by "
                "default, by version)" + (f"; the model allows {trained:,}" if trained else "")
            )
        return
    if "me" in owners:
        report.server = "llama-cpp-python"
        report.context_note = "llama-cpp-python does not say (its --n_ctx, default 2048)"
    elif "api.openai.com" in llm.base_url:
        report.server = "OpenAI"
    elif ".openai.azure.com" in llm.base_url:
        report.server = "Azure OpenAI"


async def _prompt_tokens(llm: LLMClient, report: EndpointReport, system_prompt: str) -> None:
    messages = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": _SAMPLE_GOAL},
    ]
    try:
        completion = await _once(llm, _request(llm, messages, 1))
    except openai.APIStatusError as exc:
        overflow = context_overflow(exc)
        if overflow is not None:
            if overflow.context is not None and report.context_window is None:
                report.context_window = overflow.context
                report.context_source = "the server's context-length error"
            if overflow.prompt_tokens is not None:
                report.prompt_tokens = overflow.prompt_tokens
                report.prompt_tokens_source = "the server's context-length error"
                return
    except openai.APIError:
        pass
    else:
        if completion.usage is not None and completion.usage.prompt_tokens > 0:
            report.prompt_tokens = completion.usage.prompt_tokens
            report.prompt_tokens_source = "usage of a probe (system prompt + a short goal)"
            return
    counted = await _route(llm, "POST", "/tokenize", {"content": system_prompt})
    if isinstance(counted, Mapping) and isinstance(counted.get("tokens"), list):
        report.prompt_tokens = len(counted["tokens"])
        report.prompt_tokens_source = "the server's /tokenize"
        return
    report.prompt_tokens = estimate_tokens(system_prompt)
    report.prompt_tokens_source = "estimate (characters / 4)"


async def probe_endpoint(llm: LLMClient, *, system_prompt: str | None = None) -> EndpointReport:
    """Probe ``llm``'s endpoint and remember what was found (see the module docstring).

    Spends one request per output mode, one streamed, one with ``system_prompt`` (when given),
    plus the description routes; never raises for what the endpoint answers."""
    report = EndpointReport(
        llm.base_url,
        llm.model,
        reply_tokens=llm.max_completion_tokens or EXPECTED_REPLY_TOKENS,
        memory_path=str(llm.memory.path),
    )
    try:
        listed = await llm.list_models()
    except openai.APIStatusError:
        listed = None
    except openai.APIError as exc:
        report.error = (
            f"cannot reach the LLM at {llm.base_url} ({_one_line(exc)}): is the server running? "
            "check OPENAI_BASE_URL or --base-url"
        )
        return report
    owners: set[str] = set()
    if listed is not None:
        report.models = [str(getattr(m, "id", "")) for m in listed]
        report.model_listed = model_is_listed(llm.model, listed)
        owners = {str(getattr(m, "owned_by", "")) for m in listed}
        window = context_from_models(llm.model, listed)
        if window is not None:
            report.context_window, report.context_source = window, "/v1/models max_model_len"
    await _context(llm, report, owners)
    await _modes(llm, report)
    await _streaming(llm, report)
    if system_prompt is not None:
        await _prompt_tokens(llm, report, system_prompt)
    _remember(llm, report)
    return report


def _remember(llm: LLMClient, report: EndpointReport) -> None:
    fields: dict[str, Any] = {"models_checked": True, "model_listed": report.model_listed}
    if report.context_window is not None:
        fields.update(context_window=report.context_window, context_source=report.context_source)
    if report.prompt_tokens is not None:
        fields["system_prompt_tokens"] = report.prompt_tokens
    if report.auto_mode is not None:
        fields["mode"] = report.auto_mode
        llm.remember_mode(OutputMode(report.auto_mode))
    llm.memory.update(llm.endpoint, **fields)
