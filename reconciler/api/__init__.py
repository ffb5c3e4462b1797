"""api: the HTTP control plane (`tt serve`: the `/v1` JSON API, the live event stream, metrics,
the token and origin rules) and `tt mcp` (`mcptools`: the same operations as MCP tools); the
top engine layer: may import `control` and everything below it,
and is the only door to starlette, uvicorn, prometheus_client and mcp (imported only by `tt serve`
and `tt mcp`).
"""
