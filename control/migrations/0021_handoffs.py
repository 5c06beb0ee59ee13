from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0020_report_rollups')]

    initial = False

    operations: list = []
