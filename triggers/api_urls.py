"""Triggers' API, under /api/v1/<env>/: starting a flow (the API trigger) and managing a flow's
triggers, their captured samples, request log and held requests."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import apis

urlpatterns: list[URLPattern] = [
    path("action-flow/<str:flow_id>/start", apis.ActionFlowStartApi.as_view(), name="api_flow_start"),
    path("action-flow/<str:flow_id>/test", apis.ActionFlowTestApi.as_view(), name="api_flow_test"),
    path("action-flow/<str:flow_id>/csv-task", apis.CsvTaskCreateApi.as_view(), name="api_csv_task"),
    path("action-flow/<str:flow_id>/csv-task/test", apis.CsvTaskCreateTestApi.as_view(), name="api_csv_task_test"),
    path("csv-task/<str:task_id>", apis.CsvTaskDetailApi.as_view(), name="api_csv_task_detail"),
    path("csv-task/<str:task_id>/cancel", apis.CsvTaskCancelApi.as_view(), name="api_csv_task_cancel"),
    path("flows/<int:flow_id>/triggers", apis.FlowTriggerListApi.as_view(), name="api_flow_triggers"),
    path("triggers/<int:trigger_id>", apis.TriggerDetailApi.as_view(), name="api_trigger"),
    path("triggers/<int:trigger_id>/capture-sample", apis.CaptureSampleApi.as_view()),
    path("triggers/<int:trigger_id>/preview", apis.PreviewApi.as_view()),
    path("triggers/<int:trigger_id>/mappable-properties", apis.MappablePropertiesApi.as_view()),
    path("triggers/<int:trigger_id>/send-test", apis.SendTestApi.as_view()),
    path("triggers/<int:trigger_id>/reactivate", apis.ReactivateApi.as_view()),
    path("triggers/<int:trigger_id>/rotate-key", apis.RotateKeyApi.as_view()),
    path("triggers/<int:trigger_id>/requests", apis.RequestLogApi.as_view()),
    path("triggers/<int:trigger_id>/requests/<int:request_id>", apis.RequestDetailApi.as_view()),
    path("triggers/<int:trigger_id>/requests/<int:request_id>/replay", apis.RequestReplayApi.as_view()),
    path("triggers/<int:trigger_id>/held/replay", apis.HeldReplayApi.as_view()),
    path("triggers/<int:trigger_id>/held/discard", apis.HeldDiscardApi.as_view()),
]
