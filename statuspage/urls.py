from django.urls import path, re_path

from statuspage import views

app_name = "statuspage"

urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("", views.published, name="index"),
    # Everything else public is a published snapshot, or a 404 (the snapshot has no such page).
    re_path(r"^(?P<path>(?:ro/|ro$)?[A-Za-z0-9._/-]*)$", views.published, name="published"),
]
