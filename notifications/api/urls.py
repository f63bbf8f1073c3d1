from rest_framework.routers import SimpleRouter

from notifications.api.views import WebhookEndpointViewSet

router = SimpleRouter()
router.register("webhooks", WebhookEndpointViewSet, basename="webhook-endpoint")
urlpatterns = router.urls
