"""The difference between two flow definitions, as the versions pages and the publish
confirmation show it (flows.versions: pure, no database)."""

from __future__ import annotations

from typing import Any

from flows.versions import FieldChange, definition_diff, duration_text, json_line_diff


def card(title: str, body: str = "", actions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"type": "send_card", "card": {"title": title, "body": body, "actions": actions or []}}


def wait(seconds: int) -> dict[str, Any]:
    return {"type": "wait", "seconds": seconds}


def definition(steps: list[dict[str, Any]], variables: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"variables": variables or [], "steps": steps}


def variable(name: str, default: Any = None, required: bool = False) -> dict[str, Any]:
    return {"name": name, "default": default, "required": required}


def test_identical_definitions_have_no_changes() -> None:
    same = definition([card("Hello"), wait(60)], [variable("firstName", "there")])

    diff = definition_diff(same, dict(same))

    assert diff.is_empty
    assert diff.summary == "No changes"


def test_the_first_version_lists_everything_as_added() -> None:
    diff = definition_diff(None, definition([card("Hello", "Hi {{firstName}}"), wait(3600)], [variable("firstName")]))

    assert diff.first
    assert [(change.kind, change.name) for change in diff.variables] == [("added", "firstName")]
    assert [(change.kind, change.after_number, change.summary) for change in diff.steps] == [
        ("added", 1, "Card “Hello”"),
        ("added", 2, "Wait 1 hour"),
    ]
    assert diff.steps[0].fields == (FieldChange("Title", "", "Hello"), FieldChange("Body", "", "Hi {{firstName}}"))
    assert diff.steps[1].fields == ()  # "Wait 1 hour" says it all
    assert diff.summary == "1 variable added, 2 steps added"


def test_a_changed_card_lists_each_changed_field_before_and_after() -> None:
    before = definition([card("Hello", "Welcome", [{"label": "Open", "url": "https://a.example"}])])
    after = definition(
        [
            card(
                "Hello again",
                "Welcome",
                [{"label": "Open now", "url": "https://a.example"}, {"label": "Later", "url": "https://b.example"}],
            )
        ]
    )

    diff = definition_diff(before, after)

    (change,) = diff.steps
    assert (change.kind, change.before_number, change.after_number) == ("changed", 1, 1)
    assert change.fields == (
        FieldChange("Title", "Hello", "Hello again"),
        FieldChange("Button 1", "Open → https://a.example", "Open now → https://a.example"),
        FieldChange("Button 2", "", "Later → https://b.example"),
    )
    assert diff.summary == "1 step changed"


def test_a_changed_wait_says_its_durations_in_words() -> None:
    diff = definition_diff(definition([wait(60)]), definition([wait(2 * 86400)]))

    assert diff.steps[0].fields == (FieldChange("Wait", "1 minute", "2 days"),)


def test_a_step_inserted_at_the_top_is_one_addition_not_every_step_changed() -> None:
    before = definition([card("One"), wait(60), card("Two")])
    after = definition([card("Zero"), card("One"), wait(60), card("Two")])

    diff = definition_diff(before, after)

    assert [(change.kind, change.number, change.summary) for change in diff.steps] == [("added", 1, "Card “Zero”")]


def test_a_removed_step_keeps_the_place_it_had() -> None:
    diff = definition_diff(definition([card("One"), wait(60), card("Two")]), definition([card("One"), card("Two")]))

    assert [(change.kind, change.number, change.summary) for change in diff.steps] == [("removed", 2, "Wait 1 minute")]
    assert diff.summary == "1 step removed"


def test_a_step_replaced_by_one_of_another_type_is_a_removal_and_an_addition() -> None:
    diff = definition_diff(definition([card("One"), wait(60)]), definition([card("One"), card("Two")]))

    assert [(change.kind, change.number) for change in diff.steps] == [("removed", 2), ("added", 2)]


def test_a_changed_step_that_moved_says_where_it_was() -> None:
    diff = definition_diff(definition([card("A"), card("B")]), definition([wait(60), card("A"), card("B!")]))

    changed = [change for change in diff.steps if change.kind == "changed"]
    assert [(change.before_number, change.after_number, change.moved) for change in changed] == [(2, 3, True)]


def test_variables_added_removed_and_changed_with_their_fields() -> None:
    before = definition([], [variable("firstName", "there"), variable("plan"), variable("city")])
    after = definition([], [variable("firstName", "friend", required=True), variable("plan"), variable("coupon", 10)])

    diff = definition_diff(before, after)

    assert [(change.kind, change.name, change.summary) for change in diff.variables] == [
        ("changed", "firstName", "required, default “friend”"),
        ("added", "coupon", "optional, default 10"),
        ("removed", "city", "optional, no default"),
    ]
    assert diff.variables[0].fields == (
        FieldChange("Default", "“there”", "“friend”"),
        FieldChange("Required", "no", "yes"),
    )
    assert diff.summary == "1 variable added, 1 variable removed, 1 variable changed"


def test_reordered_variables_are_a_change_too() -> None:
    diff = definition_diff(
        definition([], [variable("a"), variable("b")]), definition([], [variable("b"), variable("a")])
    )

    assert not diff.is_empty
    assert diff.variables_reordered
    assert diff.summary == "Variables reordered"


def test_durations_use_the_largest_unit_that_divides_them() -> None:
    assert [duration_text(s) for s in (1, 45, 60, 90, 7200, 86400, 3 * 86400)] == [
        "1 second",
        "45 seconds",
        "1 minute",
        "90 seconds",
        "2 hours",
        "1 day",
        "3 days",
    ]


def test_the_json_details_mark_removed_and_added_lines() -> None:
    lines = json_line_diff(definition([card("Hello")]), definition([card("Hello there")]))

    assert [(line.kind, line.text.strip()) for line in lines if line.kind in ("added", "removed")] == [
        ("removed", '"title": "Hello",'),
        ("added", '"title": "Hello there",'),
    ]
    assert lines[0].kind == "hunk"


def test_the_json_details_of_a_first_version_are_all_added() -> None:
    lines = json_line_diff(None, definition([card("Hello")]))

    assert {line.kind for line in lines} == {"hunk", "added"}
