"""``python -m ftbridge``: the same as the ``ftbridge`` command."""

from ftbridge.cli.main import main

main()
