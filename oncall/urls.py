from django.urls import path

from oncall import views

urlpatterns = [
    path("ical/<str:token>.ics", views.ical_feed, name="oncall-ical"),
]
