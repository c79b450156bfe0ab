"""The customers dashboard's "Send to N customers" (SPEC section 6): the filter's live count and
sample, the preview before sending, the manual send limit, the background run with its
progress, at most one start per customer per send, and who may do what."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from flows.models import FlowRun, Invocation
from segments import services as segment_services
from segments.models import Segment
from tests.factories import CustomerFactory
from triggers import manual_sends
from triggers.models import ManualSend, ManualSendStatus

PAGE = "/e/acme/triggers/send/"
GERMANY = {"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "DE"}]}


@pytest.fixture
def customers(env_a) -> None:
    for user_id, country in [("de-1", "DE"), ("de-2", "DE"), ("de-3", "DE"), ("fr-1", "FR")]:
        CustomerFactory(environment=env_a, user_id=user_id, country=country)


@pytest.fixture
def germany(env_a, customers, django_capture_on_commit_callbacks) -> Segment:
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_services.segment_create(environment=env_a, name="Germany", rules=GERMANY)
    segment.refresh_from_db()
    return segment


def send_data(flow: Any, rules: Any = GERMANY, **extra: Any) -> dict[str, Any]:
    return {"source": "rules", "rules": json.dumps(rules), "flow": str(flow.pk), "pick": "all", **extra}


def confirm(client: Any, data: dict[str, Any], capture: Any) -> Any:
    with capture(execute=False):  # the task is run below, as a worker would
        return client.post(f"{PAGE}confirm", data)


def test_the_dashboard_shows_the_builder_the_published_flows_and_the_limit(login, editor, flow, draft_flow) -> None:
    html = login(editor).get(PAGE).content.decode()

    assert 'id="rule-builder"' in html
    assert "js/segment_builder.js" in html
    assert f'<option value="{flow.pk}">{flow.name}</option>' in html
    assert draft_flow.name not in html  # live sends need a published flow
    assert 'id="send-limit">10,000<' in html
    assert "No sends yet" in html


def test_without_a_published_flow_the_dashboard_says_what_to_do(login, editor, draft_flow) -> None:
    html = login(editor).get(PAGE).content.decode()

    assert "No published flow yet" in html
    assert 'id="review-send"' not in html


def test_the_customer_list_links_to_the_dashboard(login, viewer) -> None:
    html = login(viewer).get("/e/acme/customers/").content.decode()

    assert f'href="{PAGE}"' in html


def test_the_live_count_lists_the_matching_customers_with_a_box_each(login, editor, customers) -> None:
    response = login(editor).post(f"{PAGE}audience", {"source": "rules", "rules": json.dumps(GERMANY)})

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="audience-count">3<' in html
    for user_id in ("de-1", "de-2", "de-3"):
        assert f'name="user_ids" value="{user_id}"' in html
    assert "fr-1" not in html


def test_the_live_count_of_a_saved_segment_is_its_members(login, viewer, germany) -> None:
    response = login(viewer).post(f"{PAGE}audience", {"source": "segment", "segment": str(germany.pk)})

    assert 'id="audience-count">3<' in response.content.decode()


def test_rules_in_error_answer_their_errors_by_path(login, editor, customers) -> None:
    bad = {"match": "all", "conditions": [{"field": "country", "op": "nope", "value": "DE"}]}
    html = login(editor).post(f"{PAGE}audience", {"source": "rules", "rules": json.dumps(bad)}).content.decode()

    assert "Finish the conditions marked in red" in html
    assert "rules.conditions[0].op" in html


def test_an_audience_over_the_limit_is_shown_as_such(login, editor, env_a, customers) -> None:
    env_a.manual_send_limit = 2
    env_a.save()

    html = login(editor).post(f"{PAGE}audience", {"source": "rules", "rules": json.dumps(GERMANY)}).content.decode()

    assert 'id="over-limit"' in html
    assert "limit of 2 per send" in html


def test_the_review_previews_the_flow_audience_and_limit_before_anything_starts(login, editor, flow, customers) -> None:
    response = login(editor).post(f"{PAGE}review", send_data(flow), HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert f"Send “{flow.name}” to 3 customers?" in html
    assert "Limit per send" in html
    assert "country is DE" in html or "country" in html
    assert 'action="/e/acme/triggers/send/confirm"' in html
    assert ManualSend.objects.count() == 0
    assert Invocation.objects.count() == 0


def test_a_send_starts_each_customer_once_with_its_source_and_sender(
    login, editor, flow, customers, django_capture_on_commit_callbacks
) -> None:
    response = confirm(login(editor), send_data(flow), django_capture_on_commit_callbacks)

    send = ManualSend.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/e/acme/triggers/sends/{send.pk}/"
    assert send.user_ids == ["de-1", "de-2", "de-3"]
    assert send.status == ManualSendStatus.QUEUED
    assert send.created_by == editor

    with django_capture_on_commit_callbacks(execute=True):
        assert manual_sends.manual_send_run(send_id=send.pk) == 3
    invocations = Invocation.objects.order_by("flow_invocation_id")
    assert [i.flow_invocation_id for i in invocations] == [f"dash-{send.pk}-de-{n}" for n in (1, 2, 3)]
    assert {i.source for i in invocations} == {"dashboard"}
    assert {i.started_by_id for i in invocations} == {editor.pk}
    assert FlowRun.objects.filter(invocation__in=invocations).count() == 3
    send.refresh_from_db()
    assert (send.status, send.started_count, send.failed_count) == (ManualSendStatus.COMPLETED, 3, 0)


def test_running_a_send_again_starts_nobody_twice(login, editor, flow, customers, django_capture_on_commit_callbacks):
    confirm(login(editor), send_data(flow), django_capture_on_commit_callbacks)
    send = ManualSend.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        manual_sends.manual_send_run(send_id=send.pk)

    # A worker that redelivers the task, or the sweep after a lease ran out, runs it again.
    ManualSend.objects.filter(pk=send.pk).update(
        status=ManualSendStatus.RUNNING, lease_until=timezone.now(), started_count=0
    )
    with django_capture_on_commit_callbacks(execute=True):
        manual_sends.manual_send_run(send_id=send.pk)

    assert Invocation.objects.count() == 3
    assert FlowRun.objects.count() == 3
    send.refresh_from_db()
    assert send.status == ManualSendStatus.COMPLETED


def test_a_long_send_hands_itself_on_between_slices_and_resumes_where_it_was(
    login, editor, flow, customers, django_capture_on_commit_callbacks, monkeypatch
):
    confirm(login(editor), send_data(flow), django_capture_on_commit_callbacks)
    send = ManualSend.objects.get()
    monkeypatch.setattr(manual_sends, "CHUNK_SIZE", 2)
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(manual_sends, "enqueue", lambda name, send_id: sent.append((name, send_id)))

    # A slice that is over after its first chunk: two customers, then the send is sent on.
    assert manual_sends.manual_send_run(send_id=send.pk, slice_seconds=0) == 2

    send.refresh_from_db()
    assert (send.status, send.started_count, send.lease_until) == (ManualSendStatus.RUNNING, 2, None)
    assert sent == [(manual_sends.RUN_TASK, send.pk)]
    ManualSend.objects.filter(pk=send.pk).update(created_at=timezone.now() - manual_sends.PICKUP_GRACE * 2)
    assert manual_sends.manual_sends_resend() == [send.pk]  # should that message be lost
    assert manual_sends.manual_send_run(send_id=send.pk) == 1  # the next message resumes
    send.refresh_from_db()
    assert (send.status, send.started_count) == (ManualSendStatus.COMPLETED, 3)
    assert Invocation.objects.count() == 3


def test_a_send_held_by_a_live_worker_is_not_run_twice(
    login, editor, flow, customers, django_capture_on_commit_callbacks
):
    confirm(login(editor), send_data(flow), django_capture_on_commit_callbacks)
    send = ManualSend.objects.get()
    ManualSend.objects.filter(pk=send.pk).update(
        status=ManualSendStatus.RUNNING, lease_until=timezone.now() + manual_sends.LEASE
    )

    assert manual_sends.manual_send_run(send_id=send.pk) == 0
    assert Invocation.objects.count() == 0


def test_ticked_customers_only_are_sent_to(login, editor, flow, customers, django_capture_on_commit_callbacks) -> None:
    data = send_data(flow, pick="some", user_ids=["de-2", "fr-1"])  # fr-1 does not match: dropped

    confirm(login(editor), data, django_capture_on_commit_callbacks)

    assert ManualSend.objects.get().user_ids == ["de-2"]


def test_a_saved_segment_sends_to_its_members(login, editor, flow, germany, django_capture_on_commit_callbacks):
    data = {"source": "segment", "segment": str(germany.pk), "flow": str(flow.pk), "pick": "all"}

    confirm(login(editor), data, django_capture_on_commit_callbacks)

    send = ManualSend.objects.get()
    assert send.user_ids == ["de-1", "de-2", "de-3"]
    assert send.segment_id == germany.pk
    assert "Germany" in send.description


def test_an_audience_over_the_limit_is_refused_with_its_count(
    login, editor, env_a, flow, customers, django_capture_on_commit_callbacks
) -> None:
    env_a.manual_send_limit = 2
    env_a.save()
    client = login(editor)

    review = client.post(f"{PAGE}review", send_data(flow), HTTP_HX_REQUEST="true").content.decode()
    response = confirm(client, send_data(flow), django_capture_on_commit_callbacks)

    assert "This send cannot go ahead" in review
    assert "3 customers, more than the 2 one send may reach" in review
    assert response.status_code == 409
    assert "3 customers, more than the 2 one send may reach" in response.content.decode()
    assert ManualSend.objects.count() == 0


def test_an_unpublished_flow_is_refused(login, editor, draft_flow, customers, django_capture_on_commit_callbacks):
    response = confirm(login(editor), send_data(draft_flow), django_capture_on_commit_callbacks)

    assert response.status_code == 400  # not among the published flows the form offers
    assert ManualSend.objects.count() == 0


def test_a_flow_needing_a_variable_is_refused_before_sending(
    login, editor, make_flow, customers, django_capture_on_commit_callbacks
) -> None:
    needy = make_flow(name="Needs a name", variables=[{"name": "firstName", "required": True}])

    response = confirm(login(editor), send_data(needy), django_capture_on_commit_callbacks)

    assert response.status_code == 400
    assert "needs a value for firstName" in response.content.decode()
    assert ManualSend.objects.count() == 0


def test_the_review_asks_for_the_flows_variables_and_the_send_gives_them_to_every_customer(
    login, editor, make_flow, customers, django_capture_on_commit_callbacks
) -> None:
    needy = make_flow(
        name="Needs a name",
        variables=[{"name": "firstName", "required": True}, {"name": "points", "default": 10}],
    )
    client = login(editor)

    review = client.post(f"{PAGE}review", send_data(needy), HTTP_HX_REQUEST="true").content.decode()
    response = confirm(
        client,
        send_data(needy, **{"variable.firstName": "Ada", "variable.points": "25"}),
        django_capture_on_commit_callbacks,
    )

    assert 'name="variable.firstName"' in review
    assert '<span class="badge required">required</span>' in review
    assert 'placeholder="Default: 10"' in review
    assert "This send cannot go ahead" not in review  # the preview asks for the value
    send = ManualSend.objects.get()
    assert response.status_code == 302
    assert send.variables == {"firstName": "Ada", "points": 25}  # typed like the default
    manual_sends.manual_send_run(send_id=send.pk)
    assert {tuple(sorted(i.variables.items())) for i in Invocation.objects.all()} == {
        (("firstName", "Ada"), ("points", 25))
    }
    assert "<code>firstName</code> = Ada" in client.get(f"/e/acme/triggers/sends/{send.pk}/").content.decode()


def test_a_variable_of_the_wrong_type_is_refused_with_its_name(
    login, editor, make_flow, customers, django_capture_on_commit_callbacks
) -> None:
    flow = make_flow(
        name="Points", variables=[{"name": "firstName", "default": "there"}, {"name": "points", "default": 10}]
    )

    response = confirm(
        login(editor), send_data(flow, **{"variable.points": "many"}), django_capture_on_commit_callbacks
    )

    assert response.status_code == 400
    assert "points: expected a number." in response.content.decode()
    assert ManualSend.objects.count() == 0


def test_nobody_matching_is_refused(login, editor, flow, customers, django_capture_on_commit_callbacks) -> None:
    nobody = {"match": "all", "conditions": [{"field": "country", "op": "eq", "value": "JP"}]}

    response = confirm(login(editor), send_data(flow, rules=nobody), django_capture_on_commit_callbacks)

    assert response.status_code == 400
    assert "Nobody matches" in response.content.decode()


def test_the_progress_page_polls_while_the_send_runs_and_stops_when_done(
    login, editor, flow, customers, django_capture_on_commit_callbacks
) -> None:
    client = login(editor)
    confirm(client, send_data(flow), django_capture_on_commit_callbacks)
    send = ManualSend.objects.get()
    url = f"/e/acme/triggers/sends/{send.pk}/"

    queued = client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        manual_sends.manual_send_run(send_id=send.pk)
    done = client.get(url, HTTP_HX_REQUEST="true").content.decode()

    assert 'hx-trigger="every 1s"' in queued
    assert 'id="send-handled">0<' in queued
    assert "Cancel send" in queued
    assert "<html" not in done
    assert 'hx-trigger="every 1s"' not in done
    assert 'id="send-handled">3<' in done
    assert "Completed" in done


def test_a_cancelled_send_starts_nobody_not_yet_started(
    login, editor, flow, customers, django_capture_on_commit_callbacks
) -> None:
    client = login(editor)
    confirm(client, send_data(flow), django_capture_on_commit_callbacks)
    send = ManualSend.objects.get()

    response = client.post(f"/e/acme/triggers/sends/{send.pk}/cancel")
    manual_sends.manual_send_run(send_id=send.pk)

    assert response.status_code == 302
    assert ManualSend.objects.get().status == ManualSendStatus.CANCELLED
    assert Invocation.objects.count() == 0


def test_the_sweep_resends_sends_nobody_picked_up(login, editor, flow, customers, django_capture_on_commit_callbacks):
    confirm(login(editor), send_data(flow), django_capture_on_commit_callbacks)
    send = ManualSend.objects.get()
    ManualSend.objects.filter(pk=send.pk).update(created_at=timezone.now() - manual_sends.PICKUP_GRACE * 2)

    assert manual_sends.manual_sends_resend() == [send.pk]


def test_a_viewer_sees_the_count_but_cannot_send(login, viewer, flow, customers) -> None:
    client = login(viewer)

    page = client.get(PAGE).content.decode()

    assert "only editors and owners send flows" in page
    assert client.post(f"{PAGE}review", send_data(flow)).status_code == 403
    assert client.post(f"{PAGE}confirm", send_data(flow)).status_code == 403
    assert ManualSend.objects.count() == 0


def test_an_owner_changes_the_limit_and_an_editor_cannot(login, owner, editor, env_a) -> None:
    assert login(editor).post(f"{PAGE}limit", {"manual_send_limit": "50"}).status_code == 403
    bad = login(owner).post(f"{PAGE}limit", {"manual_send_limit": "0"})
    response = login(owner).post(f"{PAGE}limit", {"manual_send_limit": "500"})

    env_a.refresh_from_db()
    assert bad.status_code == 400
    assert "greater than or equal to 1" in bad.content.decode()
    assert response.status_code == 302
    assert env_a.manual_send_limit == 500


def test_an_outsider_gets_nothing(login, outsider, editor, flow, customers, django_capture_on_commit_callbacks):
    confirm(login(editor), send_data(flow), django_capture_on_commit_callbacks)
    send = ManualSend.objects.get()
    client = login(outsider)

    assert client.get(PAGE).status_code == 404
    assert client.post(f"{PAGE}audience", {"rules": json.dumps(GERMANY)}).status_code == 404
    assert client.post(f"{PAGE}confirm", send_data(flow)).status_code == 404
    assert client.get(f"/e/acme/triggers/sends/{send.pk}/").status_code == 404
    assert client.post(f"/e/acme/triggers/sends/{send.pk}/cancel").status_code == 404
    # Nor from its own environment: another environment's send is not found there.
    assert client.get(f"/e/globex/triggers/sends/{send.pk}/").status_code == 404
