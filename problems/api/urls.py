from rest_framework.routers import SimpleRouter

from problems.api.views import ProblemViewSet

router = SimpleRouter()
router.register("problems", ProblemViewSet, basename="problem")
urlpatterns = router.urls
