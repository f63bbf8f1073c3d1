"""What every admin page shows about incidents: the open major incidents, as a banner.

The value is a callable, so a page that does not show the banner (the status page, the API,
the login form) runs no query; the admin's base template calls it once."""

from incidents.models import OPEN_STATES, Incident

# A desk rarely has more than one or two; the banner names these and links to the rest.
BANNER_LIMIT = 3


def open_major_incidents(request):
    def load():
        user = getattr(request, "user", None)
        if not (user and user.is_active and user.is_staff):
            return []
        if not user.has_perm("incidents.view_incident"):
            return []
        return list(
            Incident.objects.visible_to(user)
            .filter(is_major=True, state__in=OPEN_STATES)
            .only("id", "title", "priority", "opened_at")
            .order_by("opened_at", "id")[: BANNER_LIMIT + 1]
        )

    return {"open_major_incidents": load}
