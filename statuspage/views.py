"""The public site. For now the index lists public services and their status; the published
snapshot, history, feeds and Statuspage JSON come with the status page issue."""

from django.http import Http404
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from notifications.unsubscribe import LinkExpired, read_token, unsubscribe_contact
from services.models import Contact, Service


def index(request):
    services = Service.objects.filter(is_public=True).select_related("group")
    return render(request, "statuspage/index.html", {"services": services})


@csrf_exempt  # RFC 8058 one-click POSTs come from mail clients with no cookie; the token is the key
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """GET asks to confirm; POST (the form, or a mail client's one-click) unsubscribes."""
    try:
        contact_id = read_token(token)
    except LinkExpired:
        # Says no more than that: the address behind an old link is nobody's business.
        return render(request, "notifications/unsubscribe_expired.html", status=410)
    contact = Contact.objects.filter(pk=contact_id).first() if contact_id else None
    if contact is None:
        raise Http404("unknown unsubscribe link")
    with translation.override(contact.language):
        if request.method == "POST":
            unsubscribe_contact(contact)
            return render(request, "notifications/unsubscribed.html", {"contact": contact})
        return render(
            request, "notifications/unsubscribe_confirm.html", {"contact": contact, "token": token}
        )
