from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0017_agent_tests')]

    initial = False

    operations: list = []
