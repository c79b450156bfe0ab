"""Switching environment from a flows page lands on the same section of the other one."""

from __future__ import annotations

from workbench.models import Role
from workbench.services import membership_set


def test_switching_from_a_flow_page_opens_the_other_environments_flow_list(login, owner, env_b):
    membership_set(environment=env_b, user=owner, role=Role.VIEWER)

    response = login(owner).get("/switch/", {"env": env_b.slug, "section": "flow_detail"})

    assert response.status_code == 302
    assert response["Location"] == f"/e/{env_b.slug}/flows/"


def test_switching_to_the_feed_preview_keeps_the_section(login, owner, env_b):
    membership_set(environment=env_b, user=owner, role=Role.VIEWER)

    response = login(owner).get("/switch/", {"env": env_b.slug, "section": "flow_feed"})

    assert response["Location"] == f"/e/{env_b.slug}/flows/feed/"


def test_switching_from_a_segment_page_opens_the_other_environments_segment_list(login, owner, env_b):
    membership_set(environment=env_b, user=owner, role=Role.VIEWER)

    for section in ("segment_list", "segment_detail", "segment_edit"):
        response = login(owner).get("/switch/", {"env": env_b.slug, "section": section})

        assert response["Location"] == f"/e/{env_b.slug}/segments/"
