from openesd.cli.main import app

app()
