from rest_framework.routers import SimpleRouter

from services.api import views

router = SimpleRouter()
router.register("services", views.ServiceViewSet, basename="service")
router.register("organizations", views.OrganizationViewSet, basename="organization")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")
router.register("sla-policies", views.SlaPolicyViewSet, basename="sla-policy")
router.register("calendars", views.BusinessCalendarViewSet, basename="calendar")
router.register("maintenance", views.MaintenanceViewSet, basename="maintenance")
urlpatterns = router.urls
