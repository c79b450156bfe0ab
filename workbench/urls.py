"""Root URLs: the Workbench pages, the API under /api/v1/{env}/, OAuth2, admin, docs."""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, reverse_lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from customers import apis as customer_apis
from customers import views as customer_views
from flows import apis as flow_apis
from triggers import apis as trigger_apis
from triggers import receiver as trigger_receiver

from . import apis, security, views

handler404 = "workbench.api_errors.handler404"
handler500 = "workbench.api_errors.handler500"

oauth2_urlpatterns = (
    [path("token", security.RateLimitedTokenView.as_view(), name="token")],
    "oauth2_provider",
)

api_urlpatterns = [
    path("credentials", apis.CredentialListApi.as_view(), name="api_credentials"),
    path("credentials/<str:client_id>", apis.CredentialDetailApi.as_view(), name="api_credential"),
    path("customers", customer_apis.CustomerBatchApi.as_view(), name="api_customers"),
    path("customers/<str:user_id>", customer_apis.CustomerDetailApi.as_view(), name="api_customer"),
    path("test-users", customer_apis.TestUserListApi.as_view(), name="api_test_users"),
    path("test-users/<int:test_user_id>", customer_apis.TestUserDetailApi.as_view(), name="api_test_user"),
    path("action-flow/<str:flow_id>/start", trigger_apis.ActionFlowStartApi.as_view(), name="api_flow_start"),
    path("action-flow/<str:flow_id>/test", trigger_apis.ActionFlowTestApi.as_view(), name="api_flow_test"),
    path("users/<str:user_id>/cards", flow_apis.UserCardsApi.as_view(), name="api_user_cards"),
    path("invocations/<str:flow_invocation_id>", flow_apis.InvocationApi.as_view(), name="api_invocation"),
    path("flows", flow_apis.FlowListApi.as_view(), name="api_flows"),
    path("flows/<int:flow_id>", flow_apis.FlowDetailApi.as_view(), name="api_flow"),
    path("flows/<int:flow_id>/publish", flow_apis.FlowPublishApi.as_view(), name="api_flow_publish"),
    path("flows/<int:flow_id>/archive", flow_apis.FlowArchiveApi.as_view(), name="api_flow_archive"),
    path("flows/<int:flow_id>/triggers", trigger_apis.FlowTriggerListApi.as_view(), name="api_flow_triggers"),
    path("triggers/<int:trigger_id>", trigger_apis.TriggerDetailApi.as_view(), name="api_trigger"),
    path("triggers/<int:trigger_id>/capture-sample", trigger_apis.CaptureSampleApi.as_view()),
    path("triggers/<int:trigger_id>/preview", trigger_apis.PreviewApi.as_view()),
    path("triggers/<int:trigger_id>/mappable-properties", trigger_apis.MappablePropertiesApi.as_view()),
    path("triggers/<int:trigger_id>/send-test", trigger_apis.SendTestApi.as_view()),
    path("triggers/<int:trigger_id>/reactivate", trigger_apis.ReactivateApi.as_view()),
    path("triggers/<int:trigger_id>/requests", trigger_apis.RequestLogApi.as_view()),
    path("triggers/<int:trigger_id>/requests/<int:request_id>", trigger_apis.RequestDetailApi.as_view()),
    path("triggers/<int:trigger_id>/requests/<int:request_id>/replay", trigger_apis.RequestReplayApi.as_view()),
    path("triggers/<int:trigger_id>/held/replay", trigger_apis.HeldReplayApi.as_view()),
    path("triggers/<int:trigger_id>/held/discard", trigger_apis.HeldDiscardApi.as_view()),
]

environment_pages: list[URLPattern | URLResolver] = [
    path("", views.environment_home, name="environment_home"),
    path("credentials/", views.credential_list, name="credential_list"),
    path("credentials/new", views.credential_create, name="credential_create"),
    path("credentials/<str:client_id>/revoke", views.credential_revoke, name="credential_revoke"),
    path("customers/", customer_views.customer_list, name="customer_list"),
    path("customers/<path:user_id>", customer_views.customer_detail, name="customer_detail"),
    path("test-users/", customer_views.testuser_list, name="test_user_list"),
    path("test-users/new", customer_views.testuser_create, name="test_user_create"),
    path("test-users/mine", customer_views.my_test_user_set, name="my_test_user_set"),
    path("test-users/<int:test_user_id>/delete", customer_views.testuser_delete, name="test_user_delete"),
    path("flows/", include("flows.urls")),
    path("triggers/", include("triggers.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", security.RateLimitedLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("switch/", views.switch_environment, name="switch_environment"),
    path("e/<slug:env>/", include(environment_pages)),
    # One login page for the whole site, so that the admin's is no way around its rate limit.
    path("admin/login/", RedirectView.as_view(url=reverse_lazy("login"), query_string=True)),
    path("admin/", admin.site.urls),
    path("oauth/", include(oauth2_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, so the page needs no inline
    # script; Swagger UI's stylesheet draws its icons as data: images, which only this page allows.
    path(
        "api/docs/",
        csp_update({"img-src": ["data:"]})(
            SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="workbench/api_docs.html")
        ),
        name="api_docs",
    ),
    path("api/v1/<slug:env>/", include(api_urlpatterns)),
    path("hooks/<str:token>", trigger_receiver.webhook_endpoint, name="webhook"),
]
