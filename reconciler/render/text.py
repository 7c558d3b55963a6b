"""Render a plan as Terraform-style text for a terminal or a log."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from reconciler.fields import FIELDS_BY_NAME
from reconciler.normalize import Value
from reconciler.normalize import format_value
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import FieldChange
from reconciler.plan import Plan
from reconciler.plan import iter_changes_by_programme
from reconciler.planfile import plan_digest

SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.LINK: "<=",
    Action.UNLINK: "-",
}
COLOURS = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.LINK: "cyan",
    Action.UNLINK: "red",
}

Styler = Callable[[str, str], str]


def _plain(text: str, colour: str) -> str:
    return text


def format_field(name: str, value: Value) -> str:
    """Return ``value`` as shown for the field ``name``.

    Control characters are shown escaped (``\\x1b``), so that a value read from
    MyNotary can't move the cursor or change colours on a terminal or in a log.
    Invisible characters and spaces other than the ASCII space are shown as
    ``<U+00A0>``, so that two values that print alike show their difference.
    """
    spec = FIELDS_BY_NAME.get(name)
    text = spec.format(value) if spec is not None else format_value(value)
    return "".join(_escape_control(char) for char in text)


_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Zs"})


def _escape_control(char: str) -> str:
    if char.isascii() and char != "\x7f" and char >= " ":
        return char
    category = unicodedata.category(char)
    if category == "Cc":
        return char.encode("unicode_escape").decode("ascii")
    if category in _INVISIBLE_CATEGORIES:
        return f"<U+{ord(char):04X}>"
    return char


def render_plan(plan: Plan, styler: Styler = _plain) -> str:
    """Return the whole plan as text, ending with its summary line."""
    lines: list[str] = [f"Target: {plan.target}", ""]
    for heading, changes in iter_changes_by_programme(plan):
        lines.append(f"Programme {heading}")
        for change in changes:
            lines.extend(_render_change(change, styler))
        lines.append("")
    if plan.problems:
        lines.append(styler("Problems that block this plan:", "red"))
        for problem in plan.problems:
            marker = styler("!", "red")
            lines.append(
                f"  {marker} {problem.where} ({problem.up_id}): {problem.message}"
            )
            lines.append(f"      fix: {problem.fix}")
        lines.append("")
    lines.append(summary_line(plan))
    lines.append(digest_line(plan))
    return "\n".join(lines) + "\n"


def mynotary_ids(change: Change) -> str:
    """Return the MyNotary ids a change heading shows: `` #12``, or `` #7 → #12``
    for a link that moves a record's link to another id."""
    moved = change.previous_id not in (None, change.mynotary_id)
    if change.action is Action.LINK and moved:
        return f" #{change.previous_id} → #{change.mynotary_id}"
    if change.mynotary_id is not None:
        return f" #{change.mynotary_id}"
    return ""


def _render_change(change: Change, styler: Styler) -> list[str]:
    symbol = styler(SYMBOLS[change.action], COLOURS[change.action])
    head = f"  {symbol} {change.action.value} {change.label}"
    head += mynotary_ids(change)
    head += f" [{change.up_id}]"
    if change.reason:
        head += f" ({change.reason})"
    return [head, *(_render_field(change, item) for item in change.fields)]


def _render_field(change: Change, item: FieldChange) -> str:
    after = format_field(item.name, item.after)
    if change.action is Action.CREATE:
        return f"      {item.name}: {after}"
    before = format_field(item.name, item.before)
    return f"      {item.name}: {before} → {after}"


def summary_line(plan: Plan) -> str:
    """Return the last line of every rendering: counts per action, or no changes."""
    if plan.problems:
        return (
            f"Plan blocked: {len(plan.problems)} problem(s) to fix before any change "
            f"is applied ({_counts(plan)} planned)."
        )
    if not plan.changes:
        return "No changes. MyNotary matches the manifests."
    return f"Plan: {_counts(plan)}."


def digest_line(plan: Plan) -> str:
    """Return the line that closes every rendering: the digest reviewers approve."""
    return f"Plan digest: {plan_digest(plan)}"


def _counts(plan: Plan) -> str:
    return ", ".join(
        f"{plan.count(action)} to {action.value}"
        for action in (Action.CREATE, Action.UPDATE, Action.LINK, Action.UNLINK)
    )
