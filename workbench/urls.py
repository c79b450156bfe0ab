"""Root URLs: the project's wiring. Each app owns its URL modules and this one includes them:
`<app>/urls.py` for its Workbench pages under /e/<env>/, `<app>/api_urls.py` for its API under
/api/v1/<env>/, `triggers/hook_urls.py` for webhook deliveries under /hooks/; beside them the
login pages, OAuth2, the admin and the API docs. Apps are included by module name, so workbench
imports no app above it.
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, reverse_lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import security, views

handler403 = "workbench.error_pages.permission_denied"
handler404 = "workbench.error_pages.page_not_found"
handler500 = "workbench.error_pages.server_error"

oauth2_urlpatterns = (
    [path("token", security.RateLimitedTokenView.as_view(), name="token")],
    "oauth2_provider",
)

# Triggers first: their starts are the API's busiest paths (no two apps' paths overlap).
api_urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("triggers.api_urls")),
    path("", include("workbench.api_urls")),
    path("", include("customers.api_urls")),
    path("", include("segments.api_urls")),
    path("", include("flows.api_urls")),
]

environment_pages: list[URLPattern | URLResolver] = [
    path("credentials/", views.credential_list, name="credential_list"),
    path("credentials/new", views.credential_create, name="credential_create"),
    path("credentials/<str:client_id>/revoke", views.credential_revoke, name="credential_revoke"),
    path("members/", views.member_list, name="member_list"),
    path("members/add", views.member_add, name="member_add"),
    path("members/<int:membership_id>/role", views.member_role_change, name="member_role_change"),
    path("members/<int:membership_id>/remove", views.member_remove, name="member_remove"),
    path("", include("customers.urls")),
    path("flows/<int:flow_id>/triggers/", include("triggers.flow_urls")),
    path("flows/", include("flows.urls")),
    path("segments/", include("segments.urls")),
    path("triggers/", include("triggers.urls")),
]

urlpatterns = [
    # The hot paths first: Django tries the patterns in order, and a webhook or API start
    # resolved past every page pattern spent 3% of its CPU time here (measured under load).
    path("hooks/", include("triggers.hook_urls")),
    path("api/v1/<slug:env>/", include(api_urlpatterns)),
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
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
    path("integrations/sfmc/", include("triggers.sfmc_urls")),
    path("integrations/marketo/", include("triggers.marketo_urls")),
]
