"""Which SLA policy governs a service for a customer: contract, then service default, then the
global default."""

import pytest

from services.models import Contract
from services.selectors import sla_policy_for
from tests.factories import OrganizationFactory, ServiceFactory, sla_policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def policies():
    return {
        "global": sla_policy(name="Standard", is_default=True),
        "service": sla_policy(name="Service default"),
        "contract": sla_policy(name="Premium"),
    }


def test_contract_beats_service_default(policies):
    service = ServiceFactory(default_sla_policy=policies["service"])
    customer = OrganizationFactory()
    Contract.objects.create(organization=customer, service=service, sla_policy=policies["contract"])

    assert sla_policy_for(service, customer) == policies["contract"]


def test_service_default_without_a_contract(policies):
    service = ServiceFactory(default_sla_policy=policies["service"])
    customer = OrganizationFactory()
    # A contract for another service does not apply.
    Contract.objects.create(
        organization=customer, service=ServiceFactory(), sla_policy=policies["contract"]
    )

    assert sla_policy_for(service, customer) == policies["service"]
    assert sla_policy_for(service) == policies["service"]


def test_global_default_last(policies):
    service = ServiceFactory()
    assert sla_policy_for(service, OrganizationFactory()) == policies["global"]
    assert sla_policy_for(service) == policies["global"]


def test_contract_of_another_customer_does_not_apply(policies):
    service = ServiceFactory()
    Contract.objects.create(
        organization=OrganizationFactory(), service=service, sla_policy=policies["contract"]
    )
    assert sla_policy_for(service, OrganizationFactory()) == policies["global"]


def test_contract_applies_even_without_any_default():
    service = ServiceFactory()
    customer = OrganizationFactory()
    premium = sla_policy(name="Premium")
    Contract.objects.create(organization=customer, service=service, sla_policy=premium)
    assert sla_policy_for(service, customer) == premium


def test_no_policy_at_all_is_none():
    assert sla_policy_for(ServiceFactory()) is None
