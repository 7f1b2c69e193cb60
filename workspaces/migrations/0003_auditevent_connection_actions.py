# Written for the AI connection audit actions only (the OAuth work); other model changes get their own migration.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workspaces', '0002_seed_plans'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('workspace.created', 'Workspace created'), ('workspace.renamed', 'Workspace renamed'), ('member.invited', 'Member invited'), ('invitation.revoked', 'Invitation revoked'), ('member.joined', 'Member joined'), ('member.removed', 'Member removed'), ('member.left', 'Member left'), ('member.role_changed', 'Member role changed'), ('connection.created', 'AI connection created'), ('connection.revoked', 'AI connection revoked')], max_length=40),
        ),
    ]
