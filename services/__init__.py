"""Sample REST microservices of the demo shop, run behind the gateway in tests and benchmarks.

Each service is a FastAPI app built by `create_app(options)` in its own module; `runner` starts
any set of them on loopback, in a background thread (`RunningServices`) or in the foreground
(`serve_forever`, `python -m services`).
"""

from services.cli import add_service_arguments, main, run_from_args
from services.common import ServiceOptions
from services.data import ShopData, build_shop_data, shop_data
from services.registry import APP_FACTORIES, SERVICE_NAMES
from services.runner import RunningServices, ServiceSpec, serve_forever
from services.store import ShopStore

__all__ = [
    "APP_FACTORIES",
    "SERVICE_NAMES",
    "RunningServices",
    "ServiceOptions",
    "ServiceSpec",
    "ShopData",
    "ShopStore",
    "add_service_arguments",
    "build_shop_data",
    "main",
    "run_from_args",
    "serve_forever",
    "shop_data",
]
