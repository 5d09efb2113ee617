"""``python -m zart``: the same as the ``zart`` command."""

from zart.cli import main

main()
