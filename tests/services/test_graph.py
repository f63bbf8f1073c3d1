"""The dependency graph: what is hurt when a service is hurt, and cycles refused."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from services.graph import dependency_ids, hurt_service_ids, hurt_services, would_create_cycle
from services.models import ServiceDependency
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db


def depend(service, *needs):
    for other in needs:
        ServiceDependency.objects.create(service=service, depends_on=other)


def services(*slugs):
    return {slug: ServiceFactory(slug=slug, name=slug.title()) for slug in slugs}


def slugs_hurt_by(*hurt):
    return set(hurt_services(*hurt).values_list("slug", flat=True))


def test_chain_hurts_everything_upstream():
    s = services("website", "checkout", "payments", "database")
    depend(s["website"], s["checkout"])
    depend(s["checkout"], s["payments"])
    depend(s["payments"], s["database"])

    assert slugs_hurt_by(s["database"]) == {"database", "payments", "checkout", "website"}
    assert slugs_hurt_by(s["checkout"]) == {"checkout", "website"}
    assert slugs_hurt_by(s["website"]) == {"website"}


def test_diamond_reports_each_service_once():
    s = services("website", "checkout", "search", "database")
    depend(s["website"], s["checkout"], s["search"])
    depend(s["checkout"], s["database"])
    depend(s["search"], s["database"])

    ids = hurt_service_ids([s["database"].pk])
    assert ids == {x.pk for x in s.values()}
    assert list(hurt_services(s["database"]).order_by("slug").values_list("slug", flat=True)) == [
        "checkout",
        "database",
        "search",
        "website",
    ]


def test_several_roots_at_once():
    s = services("website", "mobile", "auth", "cdn", "dns", "unrelated")
    depend(s["website"], s["auth"], s["cdn"])
    depend(s["mobile"], s["auth"])
    depend(s["cdn"], s["dns"])

    assert slugs_hurt_by(s["dns"], s["auth"]) == {"dns", "cdn", "website", "auth", "mobile"}
    assert dependency_ids([s["website"].pk, s["mobile"].pk]) == {
        s[x].pk for x in ("website", "mobile", "auth", "cdn", "dns")
    }


def test_nothing_hurt_for_no_services():
    assert hurt_service_ids([]) == set()


@pytest.mark.parametrize("length", [3, 30])
def test_closure_takes_one_query_whatever_the_depth(length, django_assert_max_num_queries):
    chain = [ServiceFactory() for _ in range(length)]
    for upper, lower in zip(chain, chain[1:], strict=False):
        depend(upper, lower)

    with django_assert_max_num_queries(1):
        ids = hurt_service_ids([chain[-1].pk])
    assert ids == {s.pk for s in chain}
    with django_assert_max_num_queries(1):
        assert would_create_cycle(chain[-1].pk, chain[0].pk)


def test_cycle_refused_by_validation():
    s = services("checkout", "payments", "database")
    depend(s["checkout"], s["payments"])
    depend(s["payments"], s["database"])

    closing = ServiceDependency(service=s["database"], depends_on=s["checkout"])
    with pytest.raises(ValidationError) as raised:
        closing.full_clean()
    assert raised.value.message_dict["depends_on"] == [
        "Checkout already depends on Database, directly or through other services; "
        "this dependency would make a cycle."
    ]


def test_self_dependency_refused():
    service = ServiceFactory(name="Search")
    with pytest.raises(ValidationError) as raised:
        ServiceDependency(service=service, depends_on=service).full_clean()
    assert raised.value.message_dict["depends_on"] == ["A service cannot depend on itself."]
    # The database refuses it too, for writes that skip validation.
    with pytest.raises(IntegrityError), transaction.atomic():
        ServiceDependency.objects.create(service=service, depends_on=service)


def test_a_parallel_edge_is_not_a_cycle():
    s = services("website", "checkout", "database")
    depend(s["website"], s["checkout"])
    depend(s["checkout"], s["database"])
    ServiceDependency(service=s["website"], depends_on=s["database"]).full_clean()


def _change_form_data(service, new_dependency_ids):
    """The POST the admin change page sends, with new rows in the dependency inline."""
    data = {
        "name": service.name,
        "slug": service.slug,
        "description": "",
        "display_order": "0",
        # The cost of downtime fields, as the form shows them (issue 20).
        "cost_major_per_hour": "0",
        "cost_partial_per_hour": "0",
        "cost_degraded_per_hour": "0",
        "criticality": str(service.criticality),
        "is_public": "on",
        "status": service.status,
        "_save": "Save",
    }
    for prefix, count in [
        ("dependency_links", len(new_dependency_ids)),
        ("subscriptions", 0),
        ("contracts", 0),
    ]:
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": str(count),
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    for i, pk in enumerate(new_dependency_ids):
        data[f"dependency_links-{i}-depends_on"] = str(pk)
        data[f"dependency_links-{i}-service"] = str(service.pk)
    return data


def test_admin_inline_refuses_a_cycle(client):
    client.force_login(UserFactory(username="root", is_superuser=True))
    s = services("checkout", "payments")
    depend(s["checkout"], s["payments"])
    url = reverse("admin:services_service_change", args=[s["payments"].pk])

    response = client.post(url, _change_form_data(s["payments"], [s["checkout"].pk]))

    assert response.status_code == 200  # the form again, not a redirect
    assert "this dependency would make a cycle" in response.content.decode()
    assert not ServiceDependency.objects.filter(service=s["payments"]).exists()


def test_admin_inline_saves_an_acyclic_dependency(client):
    client.force_login(UserFactory(username="root", is_superuser=True))
    s = services("checkout", "payments")

    url = reverse("admin:services_service_change", args=[s["checkout"].pk])
    response = client.post(url, _change_form_data(s["checkout"], [s["payments"].pk]))

    assert response.status_code == 302
    assert ServiceDependency.objects.filter(
        service=s["checkout"], depends_on=s["payments"]
    ).exists()


# --- Concurrent edits: the check and the write hold the rows they depend on ---------------------


def test_add_dependency_refuses_a_cycle_with_the_field_message():
    from services import workflow

    s = services("checkout", "payments")
    workflow.add_dependency(service=s["checkout"], depends_on=s["payments"])
    with pytest.raises(ValidationError) as raised:
        workflow.add_dependency(service=s["payments"], depends_on=s["checkout"])
    assert "this dependency would make a cycle" in raised.value.message_dict["depends_on"][0]
    assert ServiceDependency.objects.count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("existing", "first", "second"),
    [
        # Two agents at once: one says checkout needs payments, the other the reverse.
        ([], ("checkout", "payments"), ("payments", "checkout")),
        # Three services: database -> checkout exists; the two new edges close the triangle.
        ([("database", "checkout")], ("checkout", "payments"), ("payments", "database")),
    ],
    ids=["two-services", "three-services"],
)
def test_two_concurrent_admin_edits_never_make_a_cycle(
    existing, first, second, on_postgres, monkeypatch
):
    """Each admin request validates (no cycle yet) and then saves; run side by side, each used to
    pass its check before the other had saved, and both saved. The first request is held
    between its validation and its save until the second has validated too (or 3 s passed,
    when the second is rightly waiting for the first's locks)."""
    import contextlib
    import threading

    from django.db import connection

    from services.admin import ServiceAdmin

    s = services("checkout", "payments", "database")
    for a, b in existing:
        depend(s[a], s[b])
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    validated = threading.Barrier(2, timeout=3)
    original_save_model = ServiceAdmin.save_model

    def save_model_after_the_other_validated(self, request, obj, form, change):
        # Broken: the other request is blocked on our locks; go on and commit.
        with contextlib.suppress(threading.BrokenBarrierError):
            validated.wait()
        return original_save_model(self, request, obj, form, change)

    monkeypatch.setattr(ServiceAdmin, "save_model", save_model_after_the_other_validated)
    responses = {}

    def edit(name, edge):
        from django.test import Client

        try:
            client = Client()
            client.force_login(root)
            service, needs = s[edge[0]], s[edge[1]]
            url = reverse("admin:services_service_change", args=[service.pk])
            responses[name] = client.post(url, _change_form_data(service, [needs.pk]))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=edit, args=("first", first)),
        threading.Thread(target=edit, args=("second", second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    edges = set(ServiceDependency.objects.values_list("service__slug", "depends_on__slug"))
    # Exactly one of the two new dependencies was saved; the other got the form back.
    saved = [name for name, edge in (("first", first), ("second", second)) if edge in edges]
    assert len(saved) == 1, edges
    refused = "second" if saved == ["first"] else "first"
    assert responses[saved[0]].status_code == 302
    assert responses[refused].status_code == 200
    assert "this dependency would make a cycle" in responses[refused].content.decode()
