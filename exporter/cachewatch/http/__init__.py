"""The HTTP side: the application wiring (``server``), the uvicorn server and its limits
(``serving``), the guard ahead of every endpoint, the web config (TLS, basic auth), refusals and
the ``/probe`` allow list."""
