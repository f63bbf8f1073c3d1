from django.urls import path, re_path

from statuspage import subscribe_views, views

app_name = "statuspage"

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("subscribe/", subscribe_views.subscribe, name="subscribe"),
    path("subscribe/confirm/<str:token>/", subscribe_views.confirm, name="subscribe_confirm"),
    path("", views.published, name="index"),
    # Everything else public is a published snapshot, or a 404 (the snapshot has no such page).
    re_path(r"^(?P<path>(?:ro/|ro$)?[A-Za-z0-9._/-]*)$", views.published, name="published"),
]
