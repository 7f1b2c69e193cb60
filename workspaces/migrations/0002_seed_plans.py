from django.db import migrations


# The launch price list (PRODUCT.md §6). After this, plans are data that staff edit in the admin.
PLANS = [
    {"code": "free", "name": "Free", "price_cents": 0, "monthly_requests": 1_000, "monthly_new_profiles": 100,
     "requests_per_second": 5, "is_public": True, "sort_order": 0},
    {"code": "pro", "name": "Pro", "price_cents": 5_000, "monthly_requests": 50_000, "monthly_new_profiles": 5_000,
     "requests_per_second": 50, "is_public": True, "sort_order": 1},
    {"code": "scale", "name": "Scale", "price_cents": 0, "monthly_requests": 1_000_000,
     "monthly_new_profiles": 100_000, "requests_per_second": 200, "is_public": False, "sort_order": 2},
]


def seed(apps, schema_editor):
    Plan = apps.get_model("workspaces", "Plan")
    for plan in PLANS:
        Plan.objects.update_or_create(code=plan["code"], defaults=plan)


class Migration(migrations.Migration):
    dependencies = [("workspaces", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
