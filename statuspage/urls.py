from django.urls import path

from statuspage import views

app_name = "statuspage"

urlpatterns = [
    path("", views.index, name="index"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
