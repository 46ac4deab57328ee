"""`python -m services`: run sample services in the foreground (see `services.cli`)."""

from services.cli import main

raise SystemExit(main())
