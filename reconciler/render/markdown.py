"""Render a plan as GitHub-flavoured Markdown, for a pull request comment.

The comment opens with a summary (counts per action and per programme, the digest
and the exit status), then one collapsible section per programme with a table of
field changes. It never contains terminal escape codes: control characters in
values are shown as ``<U+001B>`` like every invisible character.

GitHub rejects a comment longer than 65,536 characters, so a rendering stops
adding programmes before ``MAX_LENGTH``, then states how many changes it left
out and where the full plan is.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Iterable

from reconciler.errors import EXIT_CHANGES
from reconciler.errors import EXIT_ERROR
from reconciler.errors import EXIT_OK
from reconciler.normalize import Value
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import FieldChange
from reconciler.plan import Plan
from reconciler.plan import Problem
from reconciler.plan import iter_changes_by_programme
from reconciler.planfile import plan_digest
from reconciler.render.text import SYMBOLS
from reconciler.render.text import format_field
from reconciler.render.text import mynotary_ids
from reconciler.render.text import summary_line

# Characters, leaving room below GitHub's limit of 65,536 for the marker lines
# that ``reconciler.github`` adds around a comment.
MAX_LENGTH = 65_000

DEFAULT_FULL_PLAN = "the full plan in JSON (`reconciler plan --out FILE`)"

_EXIT_MEANINGS = {
    EXIT_OK: "no changes",
    EXIT_CHANGES: "changes to apply",
    EXIT_ERROR: "blocked by problems",
}

# Characters that Markdown would read as syntax in a table cell or a line.
_MARKDOWN_SYNTAX = set("\\`*_[]|~#!")

# Unicode categories whose characters are invisible, or change how their
# neighbour looks: control, format, separators and combining marks.
_INVISIBLE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp", "Zs", "Mn", "Me")


def exit_status(plan: Plan) -> int:
    """Return the exit status of ``plan --detailed-exitcode`` for this plan."""
    if plan.problems:
        return EXIT_ERROR
    return EXIT_CHANGES if plan.changes else EXIT_OK


def render_plan_markdown(
    plan: Plan, *, full_plan: str = DEFAULT_FULL_PLAN, max_length: int = MAX_LENGTH
) -> str:
    """Return the plan as Markdown of at most ``max_length`` characters.

    ``full_plan`` names where the whole plan is, for when programmes are left out.
    """
    digest = plan_digest(plan)
    head = _summary(plan, digest) + _problems(plan.problems)
    tail = f"Plan digest: `{digest}`\n"
    sections = [
        (len(changes), _section(heading, changes))
        for heading, changes in iter_changes_by_programme(plan)
    ]
    return fit_sections(head, sections, tail, full_plan, max_length)


def fit_sections(
    head: str,
    sections: list[tuple[int, str]],
    tail: str,
    full_text: str,
    max_length: int,
    unit: str = "change",
) -> str:
    """Join head, the sections that fit in order, a note on the rest, and tail.

    Each section comes with the number of ``unit`` items it shows. Once one
    section does not fit, the later ones are left out too, so what is shown is
    a prefix of the whole. ``full_text`` names where the whole document is.
    """
    shown: list[str] = []
    left_out_items = 0
    left_out_programmes = 0
    # Room kept for the note on left-out programmes, whose numbers are not known
    # until every section is placed.
    largest_note = _left_out(10**6, 10**6, full_text, max_length, unit)
    room = max_length - len(head) - len(tail) - len(largest_note)
    for count, section in sections:
        if left_out_programmes == 0 and len(section) <= room:
            shown.append(section)
            room -= len(section)
            continue
        left_out_items += count
        left_out_programmes += 1
    note = ""
    if left_out_programmes:
        note = _left_out(
            left_out_items, left_out_programmes, full_text, max_length, unit
        )
    return head + "".join(shown) + note + tail


def _left_out(
    items: int, programmes: int, full_text: str, max_length: int, unit: str
) -> str:
    return (
        f"**{items} {unit}(s) in {programmes} programme(s) are not shown**, "
        f"because this comment holds at most {max_length:,} characters: "
        f"see {full_text}.\n\n"
    )


# Summary


def _summary(plan: Plan, digest: str) -> str:
    status = exit_status(plan)
    lines = [
        f"### {escape(summary_line(plan))}",
        "",
        f"Target: {escape(str(plan.target))}<br>",
        f"Digest: `{digest}`<br>",
        f"Exit status of `plan --detailed-exitcode`: {status} "
        f"({_EXIT_MEANINGS[status]})",
        "",
    ]
    if plan.changes:
        lines.extend(_counts_table(plan))
        lines.append("")
    return "\n".join(lines) + "\n"


def _counts_table(plan: Plan) -> list[str]:
    # NOTE: the summary is never cut, so a plan touching some thousands of
    # programmes would pass the length limit with this table alone.
    actions = list(Action)
    rows = [
        "| Programme | " + " | ".join(action.value for action in actions) + " |",
        "|---|" + "---:|" * len(actions),
    ]
    for heading, changes in iter_changes_by_programme(plan):
        counts = [_count(changes, action) for action in actions]
        rows.append(f"| {escape(heading)} | " + " | ".join(counts) + " |")
    totals = [_count(plan.changes, action) for action in actions]
    rows.append("| **Total** | " + " | ".join(totals) + " |")
    return rows


def _count(changes: Iterable[Change], action: Action) -> str:
    return str(sum(1 for change in changes if change.action is action))


def _problems(problems: tuple[Problem, ...]) -> str:
    if not problems:
        return ""
    lines = [f"**Problems that block this plan ({len(problems)}):**", ""]
    for problem in problems:
        lines.append(
            f"- {escape(problem.where)} (`{problem.up_id}`): "
            f"{escape(problem.message)}. Fix: {escape(problem.fix)}."
        )
    return "\n".join(lines) + "\n\n"


# Programme sections


def _section(heading: str, changes: list[Change]) -> str:
    counts = ", ".join(
        f"{sum(1 for change in changes if change.action is action)} to {action.value}"
        for action in Action
        if any(change.action is action for change in changes)
    )
    lines = [
        "<details>",
        f"<summary>{html.escape(heading, quote=False)}: {counts}</summary>",
        "",
    ]
    for change in changes:
        lines.extend(_change(change))
    lines.extend(["</details>", "", ""])
    return "\n".join(lines)


def _change(change: Change) -> list[str]:
    head = f"**{escape(SYMBOLS[change.action])} {change.action.value}** "
    head += escape(change.label)
    head += mynotary_ids(change)
    head += f" `{change.up_id}`"
    if change.reason:
        head += f" ({escape(change.reason)})"
    lines = [head, ""]
    if change.fields:
        lines.extend(_field_table(change))
        lines.append("")
    return lines


def _field_table(change: Change) -> list[str]:
    rows = ["| Field | Up value | MyNotary value |", "|---|---|---|"]
    for item in change.fields:
        up, remote = field_cells(item, is_create=change.action is Action.CREATE)
        rows.append(f"| {escape(item.name)} | {up} | {remote} |")
    return rows


def field_cells(item: FieldChange, *, is_create: bool = False) -> tuple[str, str]:
    """Return the Up and MyNotary cells of a field change, with look-alikes shown."""
    before, after = item.before, item.after
    if isinstance(before, str) and isinstance(after, str):
        shown_after, shown_before = reveal_pair(after, before)
        return shown_after, shown_before
    remote = "(not on MyNotary)" if is_create else _cell(item.name, before)
    return _cell(item.name, after), remote


def _cell(name: str, value: Value) -> str:
    if isinstance(value, str):
        return _quoted(value, reveal_positions(value, set()))
    return escape(format_field(name, value))


# Look-alike values


def reveal_pair(first: str, second: str) -> tuple[str, str]:
    """Return both texts as Markdown, with the characters that tell them apart shown.

    Invisible characters and ambiguous spaces are always shown as ``<U+XXXX>``.
    When the two texts have the same length, the non-ASCII characters at the
    positions where they differ are shown too if they look like the other
    text's: a curly and a straight apostrophe, or a Cyrillic and a Latin letter.
    """
    differing: set[int] = set()
    if len(first) == len(second):
        differing = {
            index
            for index, (one, other) in enumerate(zip(first, second, strict=True))
            if one != other and _looks_alike(one, other)
        }
    return (
        _quoted(first, reveal_positions(first, differing)),
        _quoted(second, reveal_positions(second, differing)),
    )


def _looks_alike(one: str, other: str) -> bool:
    """Return whether two different characters may look the same when printed."""
    if unicodedata.normalize("NFKC", one) == unicodedata.normalize("NFKC", other):
        return True
    if _has_accent(one) or _has_accent(other):
        # An accent shows, so "é" and "e" read differently.
        return False
    categories = unicodedata.category(one)[0] + unicodedata.category(other)[0]
    if categories == "PP":
        return True
    return categories == "LL" and not (_is_latin(one) and _is_latin(other))


def _has_accent(char: str) -> bool:
    return len(unicodedata.normalize("NFKD", char)) > 1


def _is_latin(char: str) -> bool:
    return char.isascii() or unicodedata.name(char, "").startswith("LATIN ")


def reveal_positions(text: str, differing: set[int]) -> set[int]:
    """Return the positions in ``text`` of characters to show as code points."""
    positions = {
        index for index, char in enumerate(text) if _is_invisible(char, text, index)
    }
    positions |= {index for index in differing if not text[index].isascii()}
    return positions


def _is_invisible(char: str, text: str, index: int) -> bool:
    if char == " ":
        # A space is ambiguous at either end, or beside another space, because
        # Markdown tables and HTML drop or merge it.
        at_edge = index in (0, len(text) - 1)
        doubled = text[index - 1 : index] == " " or text[index + 1 : index + 2] == " "
        return at_edge or doubled
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES


def _quoted(text: str, positions: set[int]) -> str:
    shown = "".join(
        f"&lt;U+{ord(char):04X}&gt;" if index in positions else _escape_char(char)
        for index, char in enumerate(text)
    )
    return f'"{shown}"'


def escape(text: str) -> str:
    """Return ``text`` with Markdown and HTML syntax escaped, and control characters
    shown as code points, so it prints as written."""
    return "".join(_escape_char(char) for char in text)


def _escape_char(char: str) -> str:
    if char in "<>&":
        return html.escape(char)
    if char in _MARKDOWN_SYNTAX:
        return "\\" + char
    if unicodedata.category(char) == "Cc":
        return f"&lt;U+{ord(char):04X}&gt;"
    return char
