"""The OpenAPI schema's shared parts, added to every operation of ``/api/v1/`` by a
drf-spectacular post-processing hook, so each app's views get them without declaring them:

- the one error shape (``Error``) on every refusal a view documents without a body, and the
  refusals any operation can answer: 400 (a refused input, writes and filtered lists), 401 (no
  valid credential), 403 (not permitted), 404 (no such object, on paths with an id), 429
  (throttled, with ``Retry-After``);
- on every POST, the ``Idempotency-Key`` header and its refusals 409 and 422
  (``itsm/idempotency.py``).
"""

from itsm.idempotency import PARAMETER

API_PREFIX = "/api/v1/"
ERROR = {
    "type": "object",
    "description": (
        "Every refusal has this shape: `detail` says what is wrong with the request as a whole; "
        'a refused input has instead a list of messages per field (`{"title": ["This field '
        'is required."]}`), nested as the body is, with `non_field_errors` for the body as a '
        "whole. Some refusals add fields of their own (a stale version adds "
        "`current_version`)."
    ),
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}
_ref = {"$ref": "#/components/schemas/Error"}
RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds to wait before trying again.",
    }
}
COMMON = {
    "401": "No valid credential: give `Authorization: Bearer <token>`.",
    "403": "The credential may not do this.",
    "429": "Too many requests for this credential: wait `Retry-After` seconds.",
}
WRITE = {"400": "A refused input: a message per field; nothing was changed."}
LIST = {"400": "A refused filter or page parameter: a message per parameter."}
PAGED = {"404": "No such page."}
WITH_ID = {"404": "No object the caller may see has this id."}
IDEMPOTENT = {
    "409": "A request with this Idempotency-Key is still being answered: retry after "
    "`Retry-After` seconds.",
    "422": "This Idempotency-Key was used for another request.",
}


def _error_response(description, status):
    response = {"description": description, "content": {"application/json": {"schema": _ref}}}
    if status in ("409", "429"):
        response["headers"] = RETRY_AFTER
    return response


def document_api(result, generator, request, public):
    """drf-spectacular ``POSTPROCESSING_HOOKS`` entry: see the module docstring."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, operations in result.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            refusals = dict(COMMON)
            if method in ("post", "put", "patch"):
                refusals.update(WRITE)
            elif method == "get" and "{" not in path:
                refusals.update(LIST)
                if any(
                    p.get("name") in ("page", "cursor") for p in operation.get("parameters", [])
                ):
                    refusals.update(PAGED)
            if "{" in path:
                refusals.update(WITH_ID)
            if method == "post":
                refusals.update(IDEMPOTENT)
                parameters = operation.setdefault("parameters", [])
                if not any(p.get("name") == PARAMETER["name"] for p in parameters):
                    parameters.append(dict(PARAMETER))
            responses = operation.setdefault("responses", {})
            for status, description in refusals.items():
                responses.setdefault(status, _error_response(description, status))
            for status, response in responses.items():
                # A refusal documented by a view without a body has the one shape too.
                if status.isdigit() and int(status) >= 400 and "content" not in response:
                    response["content"] = {"application/json": {"schema": _ref}}
    return result
