"""The ``/`` status page and the in-memory history of the exposition it reads."""
