"""Reads of the catalog that other apps rely on."""

from services.models import Contract, SlaPolicy


def sla_policy_for(service, organization=None):
    """The SLA policy that governs ``service`` for ``organization``: the organisation's contract
    for the service, else the service's default policy, else the global default (or None)."""
    if organization is not None:
        contract = (
            Contract.objects.filter(organization=organization, service=service)
            .select_related("sla_policy")
            .first()
        )
        if contract:
            return contract.sla_policy
    if service is not None and service.default_sla_policy_id:
        return service.default_sla_policy
    return SlaPolicy.objects.filter(is_default=True).first()
