"""The HTTP side: the app wiring (``server``), the uvicorn server and its limits (``serving``),
the guard ahead of every endpoint, the web config (TLS, basic auth), refusals and the ``/probe``
allow list."""
