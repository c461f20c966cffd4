"""Allow ``python -m web`` as a synonym of the ``silent`` command."""
from web.cli import cli

cli(prog_name="silent")
