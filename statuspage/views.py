"""The public site. For now the index lists public services and their status; the published
snapshot, history, feeds and Statuspage JSON come with the status page issue."""

from django.shortcuts import render

from services.models import Service


def index(request):
    services = Service.objects.filter(is_public=True).select_related("group")
    return render(request, "statuspage/index.html", {"services": services})
