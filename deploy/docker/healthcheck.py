"""The image's HEALTHCHECK: GET /healthz on the port the gateway serves; exit 0 when it answers 200.

The slim base has no curl; Python's standard library does the request. The port is the one
the image's environment gives the gateway (`BFF_SERVER__PORT`).
"""

import os
import sys
import urllib.request

PORT = os.environ.get("BFF_SERVER__PORT", "8000")

try:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as error:
    print(f"bff-healthcheck: {error}", file=sys.stderr)
    sys.exit(1)
