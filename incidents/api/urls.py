from django.urls import path
from rest_framework.routers import SimpleRouter

from incidents.api import integrations
from incidents.api.metrics import MetricsView
from incidents.api.views import IncidentViewSet

router = SimpleRouter()
router.register("incidents", IncidentViewSet, basename="incident")
router.register("integrations/rules", integrations.AlertRuleViewSet, basename="alert-rule")
urlpatterns = [
    *router.urls,
    path("metrics/", MetricsView.as_view(), name="api-metrics"),
    path(
        "integrations/alertmanager/",
        integrations.AlertmanagerWebhook.as_view(),
        name="integration-alertmanager",
    ),
    path(
        "integrations/grafana/", integrations.GrafanaWebhook.as_view(), name="integration-grafana"
    ),
    path("integrations/events/", integrations.EventsWebhook.as_view(), name="integration-events"),
]
