"""The table of Channels 1.x's ``channels.delay`` 0001, under its old name.

On a database that already has it, ``manage.py migrate telex_delay
--fake-initial`` records this migration without creating anything.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="DelayedMessage",
            fields=[
                (
                    "id",
                    models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                ),
                ("due_date", models.DateTimeField(db_index=True)),
                ("channel_name", models.CharField(max_length=512)),
                ("content", models.TextField()),
            ],
            options={"db_table": "channels.delay_delayedmessage"},
        ),
    ]
