"""``python -m cachewatch`` is the ``cachewatch`` command."""

from .cli import main

main()
