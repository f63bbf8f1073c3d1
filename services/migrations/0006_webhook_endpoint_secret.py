"""One signing secret per webhook endpoint: every subscription of a URL takes the secret of that
URL's oldest subscription (the lowest id with a secret), so the choice is deterministic and the
receivers of the oldest subscription keep working unchanged."""

from django.db import migrations


def share_secrets(apps, schema_editor):
    Subscription = apps.get_model("services", "Subscription")
    hooks = (
        Subscription.objects.filter(channel="webhook")
        .exclude(webhook_url="")
        .exclude(webhook_secret="")
        .order_by("webhook_url", "pk")
        .values_list("webhook_url", "webhook_secret")
    )
    endpoint_secret = {}
    for url, secret in hooks:
        endpoint_secret.setdefault(url, secret)
    for url, secret in endpoint_secret.items():
        Subscription.objects.filter(channel="webhook", webhook_url=url).exclude(
            webhook_secret=secret
        ).update(webhook_secret=secret)


class Migration(migrations.Migration):
    dependencies = [("services", "0005_sla_inputs")]

    operations = [migrations.RunPython(share_secrets, migrations.RunPython.noop)]
