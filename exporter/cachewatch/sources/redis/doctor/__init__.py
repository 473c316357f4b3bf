"""``cachewatch doctor redis://host:port``: why a Redis' hit rate is low, from measured signals.

``signals`` reads what the rules need, within fixed bounds: ``INFO`` twice (a short window, for
rates), a ``SCAN`` sample of at most ``--sample`` keys (``COUNT`` per call, never ``KEYS`` or
``MONITOR``) with ``MEMORY USAGE`` and, under an LFU policy, ``OBJECT FREQ`` per sampled key, and
a few timed ``PING`` round trips. ``rules`` turns them into findings with their evidence and a
fix (one function per rule, no I/O); ``command`` is the CLI behind ``cachewatch doctor``.
"""
