"""What every collector shares: the health store (last read per target, readiness) and the
shape of a pulling collector (``target_collector``)."""
