import django.core.validators
from django.db import migrations, models


# A bucket holds 12 seconds of the plan's sustained rate: Free (5/s) takes a page of 60 avatars at
# once, Pro (50/s) 600, Scale (200/s) 2400. Staff change either figure in the admin afterwards.
BURST_SECONDS = 12


def seed(apps, schema_editor):
    Plan = apps.get_model("workspaces", "Plan")
    for plan in Plan.objects.all():
        plan.burst = max(1, plan.requests_per_second * BURST_SECONDS)
        plan.save(update_fields=["burst"])


class Migration(migrations.Migration):
    dependencies = [("workspaces", "0009_connector_key_rotation")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="burst",
            field=models.PositiveIntegerField(
                default=1,
                help_text="Requests a workspace may make at once (the token bucket's size), e.g. a page of avatars.",
                validators=[django.core.validators.MinValueValidator(1)],
            ),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="plan",
            name="requests_per_second",
            field=models.PositiveIntegerField(
                help_text="Workspace-wide sustained request rate: the token bucket refills at this many per second.",
                validators=[django.core.validators.MinValueValidator(1)],
            ),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
