from django.contrib import admin
from django.urls import include, path, re_path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from incidents import paging_views
from itsm import admin_links, api, health

admin.site.site_header = _("itsm service desk")
admin.site.site_title = "itsm"
admin.site.index_title = _("Service desk")

# Swagger UI's page without its inline script (the split view serves it as a file); its bundle
# and styles are our own static files (drf-spectacular-sidecar), so the default policy holds.
api_docs = SpectacularSwaggerSplitView.as_view(url_name="schema")

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Before the admin's own r/ route, which it replaces (see itsm.admin_links).
    path(
        "admin/r/<int:content_type_id>/<path:object_id>/",
        admin.site.admin_view(admin_links.view_on_site),
        name="view_on_site_scoped",
    ),
    path("oncall/", include("oncall.urls")),
    path("oncall/ack/<str:token>/", paging_views.acknowledge, name="oncall-acknowledge"),
    path("admin/", admin.site.urls),
    path("api/v1/me/", api.me, name="api-me"),
    path("api/v1/", include("incidents.api.urls")),
    path("api/v1/", include("services.api.urls")),
    path("api/v1/", include("notifications.api.urls")),
    path("api/v1/", include("problems.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs, name="api-docs"),
    # After every API route (each app's included above): the rest of /api/ is a JSON 404.
    re_path(r"^api/(?P<path>.*)$", api.not_found, name="api-not-found"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("statuspage.urls")),
]
