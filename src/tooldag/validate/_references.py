"""The reference checks: does ``$step.path`` name a step of the plan and a field its tool's output
can have, and what JSON types can it produce?

Kept apart from the walker (:mod:`~tooldag.validate.validator`) because the argument walk, the
``when`` conditions (:mod:`~tooldag.validate._conditions`) and the answer template all check
references the same way. :class:`References` is given the walker's lookups (step id -> position,
position -> tool, the cache of output paths already looked up) and the report to add issues to;
each reference it checks adds its edge to the ``deps`` list it is handed.
"""

from __future__ import annotations

import difflib
from typing import Any

from ..plan.refs import (
    BadReference,
    Ref,
    Template,
    bare_calls,
    method_hint,
    parse_string,
    read_bare_refs,
    reference_hint,
)
from ..registry.registry import Tool
from ..registry.schemas import describe_types, json_types, subschema_at
from ._args import ToolView, strings_in
from ._report import Report, Types, Where, issue_path, short

__all__ = ["Fields", "References", "UNSEEN"]

# What a cache lookup returns for a key never seen (None is a cached value: "types unknown").
UNSEEN: Any = object()

# (tool name, path) -> the JSON types at that path of its output, or the KeyError saying which
# segment cannot exist.
Fields = dict[tuple[str, tuple[str | int, ...]], Any]


class References:
    """Checks references against the plan's steps and their tools' output schemas."""

    __slots__ = ("fields", "index", "report", "step_views")

    def __init__(
        self,
        index: dict[str, int],
        step_views: list[ToolView | None],
        fields: Fields,
        report: Report,
    ) -> None:
        self.index = index
        self.step_views = step_views
        self.fields = fields
        self.report = report

    def closest_step(self, name: str) -> str | None:
        """A hint for a step id that is not in the plan."""
        match = difflib.get_close_matches(name, list(self.index), n=1, cutoff=0.6)
        if match:
            return f"did you mean ${match[0]}?"
        return f"known steps: {', '.join(list(self.index)[:10])}" if self.index else None

    def check_ref(
        self,
        ref: Ref | BadReference,
        owner: str | None,
        where: Where,
        deps: list[int],
        *,
        absent_is_null: bool = False,
    ) -> Types:
        """Report problems with one reference and record its edge; return the JSON types the
        reference can produce (None = unknown)."""
        if type(ref) is Ref:
            # The common case first: a known step whose output path was already looked up.
            target = self.index.get(ref.step)
            if target is not None and ref.step != owner:
                producer = self.step_views[target]
                if producer is not None:
                    found = self.fields.get((producer.name, ref.path), UNSEEN)
                    if found is not UNSEEN and type(found) is not KeyError:
                        deps.append(target)
                        return found  # type: ignore[no-any-return]
        add = self.report.add
        if isinstance(ref, BadReference):
            add(
                "bad_reference",
                f"malformed reference {ref.text!r}: {ref.reason}",
                step=owner,
                path=where,
                hint=ref.hint,
            )
            return None
        target = self.index.get(ref.step)
        if target is None:
            add(
                "unknown_step",
                f"reference {ref} names step {ref.step!r}, which is not in the plan",
                step=owner,
                path=where,
                hint=self.closest_step(ref.step),
            )
            return None
        if ref.step == owner:
            add(
                "cycle",
                f"step {owner!r} references its own output ({ref})",
                step=owner,
                path=where,
                hint=f"cycle: {owner} -> {owner}; a step can only use other steps' outputs",
            )
            return None
        deps.append(target)
        view = self.step_views[target]
        if view is None:
            return None
        key = (view.name, ref.path)
        if view.output is None:
            self.fields[key] = None  # nothing to check: lets the inline path take it next time
            return None
        found = self.fields.get(key, UNSEEN)
        if found is UNSEEN:
            try:
                types = json_types(subschema_at(view.output, ref.path))
                found = frozenset(types) if types is not None else None
            except KeyError as missing:
                found = missing
            self.fields[key] = found
        if not isinstance(found, KeyError):
            return found  # type: ignore[no-any-return]
        segment, position = found.args[0], found.args[1]
        if absent_is_null and position == len(ref.path) - 1:
            return frozenset({"null"})  # is_none / not_none: an absent last key reads as null
        add(
            "unknown_field",
            f"reference {ref}: {view.name}'s output has no field {segment!r}",
            step=owner,
            path=where,
            hint=_field_hint(view.tool, ref, segment, position),
        )
        return None

    def check_text(self, value: str, owner: str | None, where: Where, deps: list[int]) -> str:
        """Check the references of one string that holds a ``$``; return its kind: ``ref``,
        ``template``, ``bad`` or ``literal``."""
        parsed = parse_string(value)
        if isinstance(parsed, Ref | BadReference):
            self.check_ref(parsed, owner, where, deps)
            return "ref" if isinstance(parsed, Ref) else "bad"
        if isinstance(parsed, Template):
            self.check_template(parsed, value, owner, where, deps)
            return "template"
        self.check_loose(value, owner, where)
        return "literal"

    def check_template(
        self, parsed: Template, value: str, owner: str | None, where: Where, deps: list[int]
    ) -> None:
        """Check every ``${...}`` of the text ``value`` (parsed as ``parsed``), then its loose
        ``$``s."""
        loose = False
        for part in parsed.parts:
            if type(part) is str:
                loose = loose or "$" in part
            else:
                self.check_ref(part, owner, where, deps)  # type: ignore[arg-type]
        if loose:
            self.check_loose(value, owner, where)

    def check_loose(self, text: str, owner: str | None, where: Where) -> None:
        """``"Round $stats.mean.toFixed(2)"``: a ``$step`` inside text that the plan did not read
        as a reference (a method call on it, or text changed after the plan was built) stays
        literal text, which is never what was meant when ``step`` is a step of the plan."""
        for call in bare_calls(text, self.index):
            reason, hint = reference_hint(call)
            self.report.add(
                "bad_reference",
                f"{short(text, 60)} mentions ${call}, which is not a reference: "
                f"{reason.split(': ', 1)[-1]}",
                step=owner,
                path=where,
                hint=hint or f"write ${{{call}}} for a reference inside text, $$ for a dollar",
            )
            return
        read = read_bare_refs(text, self.index)
        if read is not None:
            body = read[1][0]
            self.report.add(
                "bad_reference",
                f"{short(text, 60)} mentions ${body} as plain text, so it will not be replaced",
                step=owner,
                path=where,
                hint=f"inside text write ${{{body}}}; for the value itself write exactly "
                f'"${body}"; for a literal dollar write $$',
            )

    def check_nested(self, value: Any, owner: str, index: int, arg: str, deps: list[int]) -> bool:
        """Check the references in every string of a list or object argument; return whether it
        holds any (a literal string with a ``$`` does not count)."""
        has_refs = False
        for text, sub in strings_in(value, issue_path((index, arg))):
            if "$" in text and self.check_text(text, owner, sub, deps) != "literal":
                has_refs = True
        return has_refs


def _field_hint(tool: Tool, ref: Ref, segment: Any, position: int) -> str | None:
    """What ``ref``'s path can say instead of ``segment`` (at ``position``), if anything."""
    prefix = Ref(ref.step, ref.path[:position])
    try:
        node = subschema_at(tool.output_schema, ref.path[:position]) or {}
    except KeyError:
        return None
    if isinstance(segment, str) and "object" not in (json_types(node) or {"object"}):
        known = method_hint(str(prefix)[1:], segment)  # .length, .toString: no fields
        if known is not None:
            return known
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        for option in options if isinstance(options, list) else []:
            if isinstance(option, dict) and "properties" in option:
                node = option
    props = node.get("properties")
    if isinstance(props, dict) and props:
        close = difflib.get_close_matches(str(segment), list(props), n=1, cutoff=0.5)
        if close:
            return f"did you mean {Ref(ref.step, (*ref.path[:position], close[0]))}?"
        return f"{prefix} has: {', '.join(props)}"
    types = json_types(node)
    if types:
        return f"{prefix} is {describe_types(types)}; reference it whole"
    return None
