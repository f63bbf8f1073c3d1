"""The product's URLs plus the benchmarks' baselines (bench/settings.py makes this the URLconf of
the benchmarks' gunicorn; the product never routes to these views)."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView


class TrivialView(APIView):
    """B2's baseline: a DRF view with the API's defaults (bearer-token authentication, the
    authenticated-caller permission, the per-token throttle) that reads nothing and answers a
    constant. What is left of a list request's time beyond it is the list's own cost."""

    def get(self, request):
        return Response({"ok": True})


# Under /api/v1/, so the middleware stack treats the baseline as it treats the API.
urlpatterns = [
    path("api/v1/bench/trivial/", TrivialView.as_view(), name="bench-trivial"),
    path("", include("itsm.urls")),
]
