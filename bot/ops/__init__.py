"""Operations: the HTTP server that always runs (``/healthz``, ``/metrics``, reference links)
and the Prometheus metrics behind it."""
