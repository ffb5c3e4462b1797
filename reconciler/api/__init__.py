"""api: the HTTP control plane (`tt serve`: the `/v1` JSON API, the live event stream, metrics,
the token and origin rules); the top engine layer: may import `control` and everything below it,
and is the only door to starlette, uvicorn and prometheus_client (imported only by `tt serve`).
"""
