"""The Markdown rendering of a plan, for a pull request comment."""

from __future__ import annotations

import re

from sample_plans import blocked_plan
from sample_plans import empty_plan
from sample_plans import programme_plan
from sample_plans import sample_plan
from syrupy.assertion import SnapshotAssertion

from reconciler.planfile import plan_digest
from reconciler.render.markdown import MAX_LENGTH
from reconciler.render.markdown import exit_status
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.markdown import reveal_pair

ESCAPE_CODE = re.compile(r"\x1b")


def test_markdown_sample(snapshot: SnapshotAssertion) -> None:
    assert render_plan_markdown(sample_plan()) == snapshot


def test_markdown_blocked(snapshot: SnapshotAssertion) -> None:
    assert render_plan_markdown(blocked_plan()) == snapshot


def test_markdown_empty(snapshot: SnapshotAssertion) -> None:
    assert render_plan_markdown(empty_plan()) == snapshot


def test_markdown_deterministic() -> None:
    assert render_plan_markdown(sample_plan()) == render_plan_markdown(sample_plan())


def test_markdown_summary_first() -> None:
    text = render_plan_markdown(sample_plan())
    summary, _, _ = text.partition("<details>")
    assert summary.startswith(
        "### Plan: 1 to create, 3 to update, 1 to link, 1 to unlink.\n"
    )
    assert f"Digest: `{plan_digest(sample_plan())}`" in summary
    assert "Exit status of `plan --detailed-exitcode`: 2 (changes to apply)" in summary
    assert "| Résidence d'Orio \\[PRG-TEST-ORIO\\] | 1 | 3 | 1 | 1 |" in summary


def test_markdown_ends_with_digest() -> None:
    text = render_plan_markdown(sample_plan())
    assert text.endswith(f"Plan digest: `{plan_digest(sample_plan())}`\n")


def test_markdown_exit_status() -> None:
    assert exit_status(empty_plan()) == 0
    assert exit_status(sample_plan()) == 2
    assert exit_status(blocked_plan()) == 1


def test_markdown_no_escape_codes() -> None:
    text = render_plan_markdown(sample_plan())
    assert ESCAPE_CODE.search(text) is None
    assert '"&lt;U+001B&gt;\\[31mB&lt;U+001B&gt;\\[0m"' in text


def test_markdown_field_table() -> None:
    text = render_plan_markdown(sample_plan())
    assert (
        "| Field | Up value | MyNotary value |\n|---|---|---|\n"
        "| livingArea | 45.50 | 57.50 |\n"
    ) in text


def test_markdown_collapsible_programmes() -> None:
    text = render_plan_markdown(programme_plan(3, 1))
    assert text.count("<details>") == 3
    assert text.count("</details>") == 3


def test_markdown_over_limit_keeps_summary() -> None:
    plan = programme_plan(40, 30)

    text = render_plan_markdown(plan, full_plan="the `reconciler-plan` artifact")

    assert len(text) <= MAX_LENGTH
    assert text.startswith("### Plan: 1200 to create,")
    assert text.count("| Résidence ") == 40
    shown = text.count("<details>")
    assert 0 < shown < 40
    left_out = (40 - shown) * 30
    assert (
        f"**{left_out} change(s) in {40 - shown} programme(s) are not shown**, "
        "because this comment holds at most 65,000 characters: see the "
        "`reconciler-plan` artifact.\n"
    ) in text
    assert text.endswith(f"Plan digest: `{plan_digest(plan)}`\n")


def test_markdown_under_limit_has_no_note() -> None:
    text = render_plan_markdown(programme_plan(2, 3))
    assert "are not shown" not in text


def test_markdown_smaller_limit() -> None:
    text = render_plan_markdown(programme_plan(3, 2), max_length=3_000)
    assert len(text) <= 3_000
    assert "programme(s) are not shown" in text


def test_reveal_curly_apostrophe() -> None:
    assert reveal_pair("d\u2019Orio", "d'Orio") == (
        '"d&lt;U+2019&gt;Orio"',
        '"d\'Orio"',
    )


def test_reveal_cyrillic_letter() -> None:
    assert reveal_pair("R\u0430s", "Ras") == ('"R&lt;U+0430&gt;s"', '"Ras"')


def test_reveal_accent_is_visible() -> None:
    assert reveal_pair("Résidence", "Residence") == ('"Résidence"', '"Residence"')


def test_reveal_decomposed_accent() -> None:
    assert reveal_pair("Re\u0301s", "R\u00e9s") == ('"Re&lt;U+0301&gt;s"', '"Rés"')


def test_reveal_trailing_space() -> None:
    assert reveal_pair("A ", "A") == ('"A&lt;U+0020&gt;"', '"A"')


def test_reveal_double_space() -> None:
    assert reveal_pair("Rue  X", "Rue X") == (
        '"Rue&lt;U+0020&gt;&lt;U+0020&gt;X"',
        '"Rue X"',
    )


def test_reveal_no_break_space() -> None:
    assert reveal_pair("A\u00a0B", "A B") == ('"A&lt;U+00A0&gt;B"', '"A B"')


def test_reveal_zero_width_space() -> None:
    assert reveal_pair("A\u200bB", "AB") == ('"A&lt;U+200B&gt;B"', '"AB"')


def test_reveal_markdown_syntax_escaped() -> None:
    assert reveal_pair("a|b*c", "a") == ('"a\\|b\\*c"', '"a"')
