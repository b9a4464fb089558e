from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("editor", "0002_edit_job_poll_errors"),
    ]

    operations = [
        migrations.AddField(
            model_name="editjob",
            name="retry_of",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="retried_as",
                to="editor.editjob",
            ),
        ),
    ]
