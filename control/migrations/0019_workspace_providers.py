from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0018_agent_versions')]

    initial = False

    operations: list = []
