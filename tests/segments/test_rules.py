"""Segment rules: every validation rule of SPEC section 5, each error named by its path."""

from __future__ import annotations

from typing import Any

import pytest

from segments.models import Segment
from segments.rules import References, rules_clean, rules_describe, rules_references
from workbench.errors import Invalid
from workbench.models import Environment


def all_of(*conditions: Any) -> dict[str, Any]:
    return {"match": "all", "conditions": list(conditions)}


def errors_of(rules: Any, environment_id: int = 1, segment_id: int | None = None) -> dict[str, list[str]]:
    with pytest.raises(Invalid) as raised:
        rules_clean(rules, environment_id=environment_id, segment_id=segment_id)
    return raised.value.errors


def segment(environment: Any, name: str, rules: dict[str, Any] | None = None) -> Segment:
    return Segment.objects.create(environment=environment, name=name, rules=rules or all_of())


# --- the group ---------------------------------------------------------------------------


def test_rules_that_are_not_an_object_are_refused_at_rules() -> None:
    assert list(errors_of(["country"])) == ["rules"]


def test_match_must_be_all_or_any() -> None:
    assert list(errors_of({"match": "some", "conditions": []})) == ["rules.match"]
    assert list(errors_of({"conditions": []})) == ["rules.match"]


def test_conditions_must_be_a_list() -> None:
    assert list(errors_of({"match": "all", "conditions": {"field": "country"}})) == ["rules.conditions"]


def test_an_unknown_key_of_the_rules_is_named() -> None:
    assert list(errors_of({"match": "all", "conditions": [], "limit": 3})) == ["rules.limit"]


def test_an_empty_top_level_group_is_everyone_but_an_empty_nested_group_is_refused() -> None:
    assert rules_clean(all_of(), environment_id=1) == {"match": "all", "conditions": []}
    assert list(errors_of(all_of({"match": "any", "conditions": []}))) == ["rules.conditions[0].conditions"]


def test_a_condition_of_no_known_kind_is_refused_at_its_index() -> None:
    errors = errors_of(all_of({"field": "country", "op": "eq", "value": "DE"}, {"color": "red"}, "country"))
    assert list(errors) == ["rules.conditions[1]", "rules.conditions[2]"]


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of(
        {
            "match": "every",
            "conditions": [
                {"field": "shoeSize", "op": "eq", "value": 42},
                {"field": "country", "op": "equals", "value": "DE"},
                {"tag": "vip", "op": "is"},
            ],
        }
    )
    assert set(errors) == {
        "rules.match",
        "rules.conditions[0].field",
        "rules.conditions[1].op",
        "rules.conditions[2].op",
    }


def test_groups_nest_at_most_five_levels() -> None:
    rules: dict[str, Any] = all_of({"field": "country", "op": "exists"})
    for _ in range(5):
        rules = all_of(rules)
    rules_clean(rules, environment_id=1)
    path = "rules" + ".conditions[0]" * 6
    assert list(errors_of(all_of(rules))) == [path]


# --- field tests ---------------------------------------------------------------------------


def test_an_unknown_field_is_named() -> None:
    assert list(errors_of(all_of({"field": "shoeSize", "op": "eq", "value": "42"}))) == ["rules.conditions[0].field"]
    assert list(errors_of(all_of({"field": "customFields.", "op": "eq", "value": "x"}))) == [
        "rules.conditions[0].field"
    ]
    assert list(errors_of(all_of({"field": 3, "op": "eq", "value": "x"}))) == ["rules.conditions[0].field"]


def test_an_unknown_op_is_named() -> None:
    assert list(errors_of(all_of({"field": "country", "op": "like", "value": "DE"}))) == ["rules.conditions[0].op"]


def test_an_op_that_does_not_fit_the_field_is_refused() -> None:
    # Text fields do not compare by order; timestamps do not match text.
    assert list(errors_of(all_of({"field": "country", "op": "gt", "value": "DE"}))) == ["rules.conditions[0].op"]
    assert list(errors_of(all_of({"field": "lastSeenAt", "op": "contains", "value": "2024"}))) == [
        "rules.conditions[0].op"
    ]
    assert list(errors_of(all_of({"field": "createdAt", "op": "eq", "value": "2024-05-01"}))) == [
        "rules.conditions[0].op"
    ]


def test_an_unknown_key_of_a_field_test_is_named() -> None:
    errors = errors_of(all_of({"field": "country", "op": "eq", "value": "DE", "caseSensitive": False}))
    assert list(errors) == ["rules.conditions[0].caseSensitive"]


@pytest.mark.parametrize(
    ("field", "op", "value"),
    [
        ("country", "eq", 49),
        ("country", "eq", None),
        ("country", "eq", ["DE"]),
        ("country", "in", "DE"),
        ("country", "in", []),
        ("country", "notIn", {"DE": True}),
        ("country", "contains", ""),
        ("country", "startsWith", 4),
        ("customFields.plan", "eq", {"name": "pro"}),
        ("customFields.plan", "in", "pro"),
        ("customFields.plan", "endsWith", True),
        ("customFields.score", "gt", "high"),
        ("customFields.score", "gte", True),
        ("createdAt", "gt", 5),
        ("createdAt", "before", "yesterday"),
        ("createdAt", "after", "2024-13-01"),
        ("createdAt", "after", "2024-02-30"),
        ("lastSeenAt", "lt", "01/05/2024"),
        ("lastSeenAt", "withinLastDays", -1),
        ("lastSeenAt", "withinLastDays", 1.5),
        ("lastSeenAt", "withinLastDays", "7"),
        ("lastSeenAt", "notWithinLastDays", True),
        ("lastSeenAt", "withinNextDays", None),
        ("lastSeenAt", "betweenDaysAgo", 30),
        ("lastSeenAt", "betweenDaysAgo", [30]),
        ("lastSeenAt", "betweenDaysAgo", [90, 30, 10]),
        ("lastSeenAt", "betweenDaysAgo", [30, 90]),
        ("lastSeenAt", "betweenDaysAgo", [90, -1]),
        ("lastSeenAt", "betweenDaysAgo", ["90", "30"]),
        ("country", "exists", "DE"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(field: str, op: str, value: Any) -> None:
    assert list(errors_of(all_of({"field": field, "op": op, "value": value}))) == ["rules.conditions[0].value"]


def test_an_op_that_needs_a_value_says_so() -> None:
    assert list(errors_of(all_of({"field": "country", "op": "eq"}))) == ["rules.conditions[0].value"]


def test_the_items_of_a_list_are_named_by_index() -> None:
    errors = errors_of(all_of({"field": "country", "op": "in", "value": ["DE", 7]}))
    assert list(errors) == ["rules.conditions[0].value[1]"]


def test_valid_field_tests_are_normalised() -> None:
    cleaned = rules_clean(
        {
            "match": "any",
            "conditions": [
                {"field": "email", "op": "eq", "value": "Ann@Example.com"},
                {"field": "country", "op": "exists", "value": None},
                {"field": "createdAt", "op": "after", "value": "2024-05-01T12:00:00+02:00"},
                {"field": "lastSeenAt", "op": "before", "value": "2024-05-01"},
                {"field": "lastSeenAt", "op": "lt", "value": "2024-05-01T10:00:00"},
                {"field": "lastSeenAt", "op": "betweenDaysAgo", "value": [90, 30]},
                {"field": "customFields.score", "op": "gte", "value": 2.5},
                {"field": "customFields.trialEnds", "op": "withinNextDays", "value": 7},
                {"field": "customFields.beta", "op": "in", "value": [True, "yes", 1]},
            ],
        },
        environment_id=1,
    )
    assert cleaned["conditions"] == [
        {"field": "email", "op": "eq", "value": "Ann@Example.com"},
        {"field": "country", "op": "exists"},
        {"field": "createdAt", "op": "after", "value": "2024-05-01T10:00:00Z"},
        {"field": "lastSeenAt", "op": "before", "value": "2024-05-01"},
        {"field": "lastSeenAt", "op": "lt", "value": "2024-05-01T10:00:00Z"},
        {"field": "lastSeenAt", "op": "betweenDaysAgo", "value": [90, 30]},
        {"field": "customFields.score", "op": "gte", "value": 2.5},
        {"field": "customFields.trialEnds", "op": "withinNextDays", "value": 7},
        {"field": "customFields.beta", "op": "in", "value": [True, "yes", 1]},
    ]


def test_a_custom_field_name_may_hold_dots_and_spaces() -> None:
    rules = all_of({"field": "customFields.plan.tier name", "op": "eq", "value": "gold"})
    assert rules_clean(rules, environment_id=1) == rules


# --- tag tests -------------------------------------------------------------------------------


def test_tag_tests() -> None:
    rules = all_of({"tag": "vip", "op": "has"}, {"tags": ["a", "b", "a"], "op": "hasAll"})
    assert rules_clean(rules, environment_id=1)["conditions"][1] == {"tags": ["a", "b"], "op": "hasAll"}
    assert list(errors_of(all_of({"tag": "vip", "op": "hasAny"}))) == ["rules.conditions[0].op"]
    assert list(errors_of(all_of({"tag": "", "op": "has"}))) == ["rules.conditions[0].tag"]
    assert list(errors_of(all_of({"tags": "vip", "op": "hasAny"}))) == ["rules.conditions[0].tags"]
    assert list(errors_of(all_of({"tags": [], "op": "hasAny"}))) == ["rules.conditions[0].tags"]
    assert list(errors_of(all_of({"tags": ["vip"], "op": "has"}))) == ["rules.conditions[0].op"]


# --- event tests -----------------------------------------------------------------------------


def test_a_full_event_test_is_taken() -> None:
    rules = all_of(
        {
            "event": "purchase",
            "op": "countGte",
            "value": 3,
            "withinLastDays": 30,
            "where": [{"property": "plan", "op": "eq", "value": "pro"}],
        },
        {"event": "login", "op": "notOccurred"},
    )
    assert rules_clean(rules, environment_id=1) == rules


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"event": "", "op": "occurred"}, "event"),
        ({"event": 7, "op": "occurred"}, "event"),
        ({"event": "purchase", "op": "happened"}, "op"),
        ({"event": "purchase"}, "op"),
        ({"event": "purchase", "op": "countGte"}, "value"),
        ({"event": "purchase", "op": "countGte", "value": -1}, "value"),
        ({"event": "purchase", "op": "countEq", "value": 1.5}, "value"),
        ({"event": "purchase", "op": "countLte", "value": "2"}, "value"),
        ({"event": "purchase", "op": "occurred", "value": 2}, "value"),
        ({"event": "purchase", "op": "occurred", "withinLastDays": 0}, "withinLastDays"),
        ({"event": "purchase", "op": "occurred", "withinLastDays": "30"}, "withinLastDays"),
        ({"event": "purchase", "op": "occurred", "where": {"plan": "pro"}}, "where"),
        ({"event": "purchase", "op": "occurred", "where": ["plan"]}, "where[0]"),
        ({"event": "purchase", "op": "occurred", "where": [{"op": "eq", "value": "x"}]}, "where[0].property"),
        (
            {"event": "purchase", "op": "occurred", "where": [{"property": "plan", "op": "like", "value": "x"}]},
            "where[0].op",
        ),
        (
            {"event": "purchase", "op": "occurred", "where": [{"property": "plan", "op": "in", "value": "pro"}]},
            "where[0].value",
        ),
        (
            {"event": "purchase", "op": "occurred", "where": [{"property": "n", "op": "eq", "value": 1, "x": 1}]},
            "where[0].x",
        ),
        ({"event": "purchase", "op": "occurred", "times": 2}, "times"),
    ],
)
def test_event_test_errors_are_named(condition: dict[str, Any], path: str) -> None:
    assert list(errors_of(all_of({"field": "country", "op": "exists"}, condition))) == [f"rules.conditions[1].{path}"]


# --- segment tests ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_segment_test_names_a_segment_of_the_same_environment(env_a: Environment, env_b: Environment) -> None:
    ours = segment(env_a, "Germans")
    theirs = segment(env_b, "Globex VIPs")
    rules = all_of({"segment": ours.pk, "op": "in"})
    assert rules_clean(rules, environment_id=env_a.pk) == rules
    errors = errors_of(all_of({"segment": theirs.pk, "op": "in"}), environment_id=env_a.pk)
    assert errors == {"rules.conditions[0].segment": ["No such segment in this environment."]}
    errors = errors_of(all_of({"segment": 999_999, "op": "notIn"}), environment_id=env_a.pk)
    assert list(errors) == ["rules.conditions[0].segment"]


@pytest.mark.django_db
def test_segment_test_shape_errors(env_a: Environment) -> None:
    ours = segment(env_a, "Germans")
    assert list(errors_of(all_of({"segment": ours.pk, "op": "within"}), env_a.pk)) == ["rules.conditions[0].op"]
    assert list(errors_of(all_of({"segment": "Germans", "op": "in"}), env_a.pk)) == ["rules.conditions[0].segment"]
    assert list(errors_of(all_of({"segment": True, "op": "in"}), env_a.pk)) == ["rules.conditions[0].segment"]


@pytest.mark.django_db
def test_a_segment_may_not_contain_itself(env_a: Environment) -> None:
    itself = segment(env_a, "Loop")
    errors = errors_of(
        all_of({"field": "country", "op": "exists"}, all_of({"segment": itself.pk, "op": "notIn"})),
        environment_id=env_a.pk,
        segment_id=itself.pk,
    )
    assert list(errors) == ["rules.conditions[1].conditions[0].segment"]
    assert "“Loop” → “Loop”" in errors["rules.conditions[1].conditions[0].segment"][0]


@pytest.mark.django_db
def test_a_segment_may_not_depend_on_itself_through_others(env_a: Environment) -> None:
    edited = segment(env_a, "A")
    b = segment(env_a, "B", all_of({"segment": edited.pk, "op": "in"}))
    c = segment(env_a, "C", all_of({"field": "country", "op": "exists"}, all_of({"segment": b.pk, "op": "in"})))
    unrelated = segment(env_a, "D")
    errors = errors_of(
        all_of({"segment": unrelated.pk, "op": "in"}, {"segment": c.pk, "op": "in"}),
        environment_id=env_a.pk,
        segment_id=edited.pk,
    )
    assert errors == {
        "rules.conditions[1].segment": ["A segment may not depend on itself: “A” → “C” → “B” → “A”."],
    }
    # Depending on the same segments is fine for another segment.
    rules_clean(all_of({"segment": c.pk, "op": "in"}), environment_id=env_a.pk, segment_id=unrelated.pk)


# --- references and descriptions -------------------------------------------------------------


def test_references_list_what_the_rules_read() -> None:
    rules = all_of(
        {"field": "country", "op": "eq", "value": "DE"},
        {
            "match": "any",
            "conditions": [
                {"field": "customFields.plan", "op": "in", "value": ["pro"]},
                {"tag": "vip", "op": "has"},
                {"event": "purchase", "op": "occurred"},
                {"segment": 4, "op": "in"},
            ],
        },
    )
    assert rules_references(rules) == References(
        fields=frozenset({"country", "customFields.plan"}),
        tags=True,
        events=frozenset({"purchase"}),
        segments=frozenset({4}),
        time_relative=False,
    )


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "lastSeenAt", "op": "withinLastDays", "value": 7},
        {"field": "lastSeenAt", "op": "notWithinLastDays", "value": 7},
        {"field": "customFields.renewal", "op": "withinNextDays", "value": 7},
        {"field": "createdAt", "op": "betweenDaysAgo", "value": [90, 30]},
        {"event": "purchase", "op": "occurred", "withinLastDays": 30},
        {
            "event": "purchase",
            "op": "occurred",
            "where": [{"property": "at", "op": "withinLastDays", "value": 3}],
        },
    ],
)
def test_references_say_when_time_alone_changes_the_answer(condition: dict[str, Any]) -> None:
    assert rules_references(all_of(all_of(condition))).time_relative is True


def test_fixed_dates_are_not_time_relative() -> None:
    rules = all_of({"field": "createdAt", "op": "before", "value": "2024-01-01"}, {"tags": ["a"], "op": "hasAny"})
    assert rules_references(rules).time_relative is False


def test_rules_describe_reads_as_a_sentence() -> None:
    rules = all_of(
        {"field": "country", "op": "eq", "value": "DE"},
        {"field": "customFields.plan", "op": "in", "value": ["pro", "team"]},
    )
    assert rules_describe(rules) == "country is DE and plan in pro, team"
    nested = {
        "match": "any",
        "conditions": [
            {"event": "purchase", "op": "countGte", "value": 2, "withinLastDays": 30},
            all_of({"tag": "vip", "op": "hasNot"}, {"segment": 3, "op": "in"}),
        ],
    }
    assert (
        rules_describe(nested, segment_names={3: "Germans"})
        == "did purchase at least 2 times in the last 30 days or (has not tag vip and in Germans)"
    )
    assert rules_describe(all_of()) == "everyone"


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_datetime_outside_the_calendar_in_utc_is_refused_not_a_crash(moment):
    rules = {"match": "all", "conditions": [{"field": "lastSeenAt", "op": "before", "value": moment}]}

    with pytest.raises(Invalid) as caught:
        rules_clean(rules, environment_id=1)

    assert list(caught.value.errors) == ["rules.conditions[0].value"]
