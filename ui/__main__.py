"""``python -m ui``: the operator HMI (same as ``inspector-hmi``)."""

from ui.app import main

raise SystemExit(main())
