from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0019_workspace_providers')]

    initial = False

    operations: list = []
