"""The subscribe pages: thin views over ``statuspage.subscribe``."""

from axes.helpers import get_client_ip_address
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from statuspage import subscribe as subscriptions
from statuspage.forms import SubscribeForm


@require_http_methods(["GET", "POST"])
def subscribe(request):
    """GET: the form. POST: "check your inbox", the same for every address (known, unknown,
    already subscribed); 429 when rate limited; the form again with its errors."""
    if request.method == "GET":
        return render(request, "statuspage/subscribe.html", {"form": SubscribeForm()})
    form = SubscribeForm(request.POST)
    if form.is_valid():
        try:
            subscriptions.request_subscription(
                form.cleaned_data["email"],
                form.service_ids(),
                form.cleaned_data["language"],
                get_client_ip_address(request),
            )
        except subscriptions.RateLimited:
            response = render(request, "statuspage/subscribe_limited.html", status=429)
            response["Retry-After"] = "3600"
            return response
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    form.add_error(field if field in form.fields else None, message)
        else:
            return render(request, "statuspage/subscribe_sent.html")
    return render(request, "statuspage/subscribe.html", {"form": form}, status=400)


@csrf_exempt  # the signed token in the URL is the key; a cross-site POST cannot know it
@require_http_methods(["GET", "POST"])
def confirm(request, token):
    """The link in the confirmation email. GET shows what the link would subscribe to and a
    button, and changes nothing: mail scanners (Outlook Safe Links, corporate gateways) open
    every link in a message, and a subscription someone else asked for must not be confirmed
    by the victim's scanner. POST (the button) activates it; clicking twice is harmless. An
    old link says so and points back to the form."""
    try:
        if request.method == "POST":
            confirmed = subscriptions.confirm_subscription(token)
            template = "statuspage/subscribe_confirmed.html"
        else:
            confirmed = subscriptions.preview_subscription(token)
            template = "statuspage/subscribe_confirm.html"
    except subscriptions.LinkExpired:
        return render(request, "statuspage/subscribe_expired.html", status=410)
    except subscriptions.InvalidLink:
        return render(request, "statuspage/subscribe_invalid.html", status=404)
    with translation.override(confirmed.language):
        response = render(request, template, {"confirmed": confirmed})
    # The page repeats the subscriber's address; keep it out of shared caches and indexes.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    return response
