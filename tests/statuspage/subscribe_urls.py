"""The project's URLs with the subscribe pages added to the status page's (until the lead adds
them to statuspage.urls)."""

from django.urls import include, path

from itsm.urls import urlpatterns as project_urls
from statuspage import subscribe_views
from statuspage import urls as statuspage_urls

# The lines for statuspage/urls.py.
SUBSCRIBE_PATTERNS = [
    path("subscribe/", subscribe_views.subscribe, name="subscribe"),
    path("subscribe/confirm/<str:token>/", subscribe_views.confirm, name="subscribe_confirm"),
]

urlpatterns = [
    p for p in project_urls if getattr(p, "namespace", None) != statuspage_urls.app_name
] + [path("", include((statuspage_urls.urlpatterns + SUBSCRIBE_PATTERNS, "statuspage")))]
