"""Reads of the catalog that other apps rely on."""

from services.models import Contract, SlaPolicy


def global_default_policy():
    return SlaPolicy.objects.filter(is_default=True).first()


def sla_policies_for(services, organization=None):
    """{service id: the SLA policy governing it for ``organization``}: the organisation's
    contract for the service, else the service's default policy. Services with neither are
    left out (the caller falls back to the global default). One query for the contracts, none
    more when ``default_sla_policy`` was selected with the services."""
    services = list(services)
    contracts = {}
    if organization is not None and services:
        contracts = {
            c.service_id: c.sla_policy
            for c in Contract.objects.filter(
                organization=organization, service__in=services
            ).select_related("sla_policy__calendar")
        }
    found = {}
    for service in services:
        policy = contracts.get(service.pk) or (
            service.default_sla_policy if service.default_sla_policy_id else None
        )
        if policy is not None:
            found[service.pk] = policy
    return found


def sla_policy_for(service, organization=None):
    """The SLA policy that governs ``service`` for ``organization``: the organisation's contract
    for the service, else the service's default policy, else the global default (or None)."""
    found = sla_policies_for([service] if service is not None else [], organization)
    return found.get(getattr(service, "pk", None)) or global_default_policy()
