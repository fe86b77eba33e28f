"""``python -m inspector.plc.sim``: run the line simulator (see :mod:`inspector.plc.sim.cli`)."""

import sys

from inspector.plc.sim.cli import main

sys.exit(main())
