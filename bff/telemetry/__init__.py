"""Telemetry: traces, Prometheus metrics, the access log and the redaction they share.

The only package that imports OpenTelemetry or prometheus_client. It attaches at four seams
(STYLE practice 10), each in its own module:

    stage.py       the ASGI server span, request metrics and access line (bff/app.py)
    operation.py   the GraphQL operation span (wraps GraphQLExecutor.execute)
    batches.py     one span and one batch-size observation per dataloader batch
    transport.py   one client span per upstream attempt (a layer of each pool's stack)

`hub.Telemetry` holds one app's parts; `current` carries the request being observed from the
stage to the other seams. Kept free of imports so that `bff.upstream` can import the
transport layer without pulling the rest in.
"""
