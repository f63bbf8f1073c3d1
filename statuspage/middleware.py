"""Published pages served before the rest of the middleware stack.

A reader of the status page has no session, no CSRF token and no user: the published snapshot
is the same for everyone. So a GET or HEAD of a public path is answered here, after the
security headers (SecurityMiddleware, the CSP) and the static files, without loading a session,
the locale machinery, the user or the login throttle. Paths of the desk, the API and the
subscribe forms go on as usual; so does a public path with no snapshot (the URL conf gives it
its 404).
"""

from statuspage.views import serve_snapshot

# Paths that are never published snapshots.
PASS_THROUGH = (
    "/admin/",
    "/api/v1/",
    "/api/schema",
    "/api/docs",
    "/static/",
    "/subscribe/",
    "/unsubscribe/",
    "/i18n/",
    "/healthz",
    "/readyz",
)


class PublishedPagesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD") and not request.path.startswith(PASS_THROUGH):
            response = serve_snapshot(request, request.path[1:])
            if response is not None:
                return response
        return self.get_response(request)
