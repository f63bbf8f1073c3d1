"""One error shape, and never a 500 for what a client sends: the regressions schemathesis found."""

import pytest

from itsm import tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client):
    _token, secret = tokens.issue(name="reader", scopes=["write"])
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


@pytest.mark.parametrize(
    "since",
    [
        "2026-01-01T00:00:00+19:31",  # beyond PostgreSQL's ±15:59 (was a 500)
        "1758-05-02T05:10:52.187949-18:29",
    ],
)
def test_a_date_time_with_any_offset_python_reads_is_taken(api, since):
    response = api.get("/api/v1/incidents/", {"updated_since": since})
    assert response.status_code == 200, response.content


def test_a_date_time_that_leaves_the_calendar_in_utc_is_a_400(api):
    response = api.get("/api/v1/incidents/", {"opened_after": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 400
    assert "between years 1 and 9999" in response.json()["opened_after"][0]


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_api_path_is_the_apis_json_404(api, method):
    # /incidents/0.5/ matches no route; the status page's catch-all used to answer it with HTML
    # (and a CSRF 403 for a POST).
    response = getattr(api, method)("/api/v1/incidents/0.5/acknowledge/")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_the_schema_says_blank_codes_and_statuses_come(client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    schema = client.get("/api/schema/?format=json").json()
    incident = schema["components"]["schemas"]["Incident"]["properties"]
    for name in ("resolution_code", "public_status"):
        choices = [part.get("$ref", "") for part in incident[name]["oneOf"]]
        assert any(ref.endswith("BlankEnum") for ref in choices), incident[name]
    assert "Error" in schema["components"]["schemas"]
