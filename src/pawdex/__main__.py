from pawdex.cli import app

app(prog_name="pawdex")
