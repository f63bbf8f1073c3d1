"""Safe retries for the REST API: an ``Idempotency-Key`` header on any POST under ``/api/v1/``.

A client that sends a POST with ``Idempotency-Key: <its own unique text>`` and loses the answer
(a timeout, a dropped connection) sends the same request again with the same key:

- the same key with the same request (method, path, body) answers the first response again
  (status, body, ``Content-Type``, ``ETag``, ``Location``), with ``Idempotent-Replayed: true``,
  and the action does not run again;
- the same key with another request is refused, 422;
- a repeat while the first is still being answered is refused, 409 with ``Retry-After: 1``
  (as the IETF draft "The Idempotency-Key HTTP Header Field" says), not kept waiting: a
  worker is not held by a client retrying too eagerly. (On SQLite, the embedded default, writes
  take turns anyway: the repeat waits for the first and gets its answer.)
- keys are per credential (an API token, or a signed-in user): another caller's key never
  matches, it is a key of its own;
- a key is kept ``IDEMPOTENCY_KEY_TTL_HOURS`` (24) after its first use; the beat task
  ``itsm.purge_idempotency_records`` deletes expired ones.

Only a success (2xx) is kept. A refusal (4xx) changed nothing, so the client may correct its
request and send it again under the same key; a server error (5xx) rolls back whatever the
request wrote and keeps nothing, so a retry runs it afresh.

How a repeat cannot run the action twice: the request runs in one transaction that holds a
PostgreSQL advisory lock on (credential, key) and writes the record; the action's changes and
the record commit together or not at all. A crash half-way leaves neither.

It is middleware, not a view mixin, so every POST under the prefix has it, whichever app's view
answers (a function, an ``APIView``, a viewset). The caller is authenticated here with the API's
own bearer tokens or the session (with DRF's CSRF check), before anything is replayed: a revoked
token or a forged request gets nothing back. The view then authenticates, checks permissions and
throttles as usual.
"""

import hashlib
from datetime import timedelta
from io import BytesIO

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.authentication import CSRFCheck

from itsm import tokens
from itsm.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Headers of the first response that a replay carries too; the rest (dates, CSP, cookies)
# are the replay's own.
KEPT_HEADERS = ("Content-Type", "Content-Language", "ETag", "Location")
# Namespaces our advisory locks (pg_try_advisory_xact_lock(int, int)) from any other use.
LOCK_CLASS = 0x1DE0


def ttl():
    return timedelta(hours=float(getattr(settings, "IDEMPOTENCY_KEY_TTL_HOURS", 24)))


def _prefixes():
    return tuple(getattr(settings, "IDEMPOTENCY_PATH_PREFIXES", ("/api/v1/",)))


def key_problem(key):
    """What is wrong with a header value as a key, or None."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return _("Give a key of 1 to %(max)d characters.") % {"max": MAX_KEY_LENGTH}
    if not all(" " <= char <= "~" for char in key):
        return _("Use printable ASCII characters only (a UUID is a good key).")
    return None


def fingerprint(request, body):
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _csrf_refused(request):
    # DRF's session authentication checks CSRF itself; a replay must not skip that check.
    check = CSRFCheck(lambda _request: None)
    check.process_request(request)
    return check.process_view(request, None, (), {}) is not None


def credential_of(request):
    """``token:<id>`` or ``user:<id>`` for a caller the API would accept, else None (the view
    then answers 401 or 403 as it would without the header)."""
    scheme, _space, text = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer":
        found = tokens.authenticate(text.strip())
        return f"token:{found[0].pk}" if found else None
    if scheme:
        return None  # a scheme the API does not take
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or _csrf_refused(request):
        return None
    return f"user:{user.pk}"


def _max_body():
    return max(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0, settings.INTEGRATION_MAX_BODY)


def _body(request):
    """The body, or None when it is larger than any view accepts (the view answers 413/400
    without reading it whole)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if declared > _max_body():
        return None
    return request.read(declared) if declared else b""


def lock_sql_args(credential, key):
    """The two integers of (credential, key)'s advisory lock."""
    digest = hashlib.sha256(f"{credential}\n{key}".encode()).digest()
    return [LOCK_CLASS, int.from_bytes(digest[:4], "big", signed=True)]


def _lock(credential, key):
    """Hold (credential, key) until the transaction ends; False if another one holds it."""
    if connection.vendor != "postgresql":
        return True  # SQLite: the transaction holds the database's write lock already
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", lock_sql_args(credential, key))
        return cursor.fetchone()[0]


def refusal(status, detail, **headers):
    response = JsonResponse(detail if isinstance(detail, dict) else {"detail": detail})
    response.status_code = status
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def replay(record):
    response = HttpResponse(bytes(record.body), status=record.status_code)
    for name, value in record.headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def kept_headers(response):
    return {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}


class IdempotencyMiddleware:
    """See the module docstring. After the session and user middleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.META.get("HTTP_IDEMPOTENCY_KEY")
        if key is None or request.method != "POST" or not request.path.startswith(_prefixes()):
            return self.get_response(request)
        problem = key_problem(key)
        if problem:
            return refusal(400, {HEADER: [problem]})
        credential = credential_of(request)
        if credential is None:
            return self.get_response(request)
        body = _body(request)
        if body is None:
            return self.get_response(request)
        # The view reads the body again (request.body, or the raw stream): give it back.
        request._body = body
        request._stream = BytesIO(body)
        return self.once(request, credential, key, fingerprint(request, body))

    def once(self, request, credential, key, print_):
        with transaction.atomic():
            if not _lock(credential, key):
                return refusal(
                    409,
                    _(
                        "A request with this Idempotency-Key is still being answered; "
                        "send it again when it has finished."
                    ),
                    Retry_After="1",
                )
            now = timezone.now()
            record = IdempotencyRecord.objects.filter(credential=credential, key=key).first()
            if record is not None and record.expires_at <= now:
                record.delete()
                record = None
            if record is not None:
                if record.fingerprint != print_:
                    return refusal(
                        422,
                        {
                            HEADER: [
                                _(
                                    "This key was used for another request (another path or "
                                    "body); use a new key for a new request."
                                )
                            ]
                        },
                    )
                return replay(record)
            response = self.get_response(request)
            if response.status_code >= 500:
                transaction.set_rollback(True)
            elif 200 <= response.status_code < 300 and not response.streaming:
                IdempotencyRecord.objects.create(
                    credential=credential,
                    key=key,
                    fingerprint=print_,
                    status_code=response.status_code,
                    headers=kept_headers(response),
                    body=response.content,
                    expires_at=now + ttl(),
                )
            return response


def purge_expired(*, now=None, batch=5000):
    """Delete expired records, a batch at a time; the number deleted."""
    now = now or timezone.now()
    deleted = 0
    while True:
        ids = list(
            IdempotencyRecord.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[
                :batch
            ]
        )
        if not ids:
            return deleted
        deleted += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]


# --- OpenAPI ---------------------------------------------------------------------------------

PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    "description": (
        "Your own unique text (a UUID) for this request. A retry with the same key and the same "
        "body answers the first response again (with `Idempotent-Replayed: true`) and does not "
        "act twice; the same key with another body is refused (422); a retry while the first is "
        "still being answered is refused (409, `Retry-After`). Keys are per credential and kept "
        "24 hours. Only successes are kept: after a refusal, correct the request and send it "
        "again under the same key."
    ),
}
