"""The escalation the SLA sweep had hard-wired (a breach mails the team's escalation contact),
as the default escalation policy: nothing changes for a desk until it edits the policy. It
does not start on new P1/P2 incidents, as nothing did before."""

from django.db import migrations


def create_default(apps, schema_editor):
    policy_model = apps.get_model("oncall", "EscalationPolicy")
    level_model = apps.get_model("oncall", "EscalationLevel")
    if policy_model.objects.filter(is_default=True).exists():
        return
    policy = policy_model.objects.create(
        name="Default: the team's escalation contact",
        is_default=True,
        repeat=0,
        starts_on_urgent=False,
    )
    level_model.objects.create(policy=policy, position=0, target="team_contact", wait_minutes=0)


class Migration(migrations.Migration):
    dependencies = [("oncall", "0001_initial")]

    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]
