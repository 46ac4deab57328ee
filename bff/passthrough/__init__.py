"""REST passthrough: `/api/{route}/{path}` forwarded to the route's upstream pool, streamed.

The route decides who may call (the same requirements as GraphQL fields) and which methods
pass; the path is normalised by `bff.upstream.paths` before it goes anywhere; headers are
cleaned both ways (`forwarding`); bodies stream both ways over the gateway's own client
(`ConnectionPool.stream`), so memory per request stays bounded whatever the sizes.
"""

from bff.passthrough.app import Passthrough
from bff.passthrough.routes import PassRoute, routes_from_settings

__all__ = ["PassRoute", "Passthrough", "routes_from_settings"]
