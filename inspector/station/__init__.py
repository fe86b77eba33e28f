"""The station: assembled in one place from a station file, run, and served to user interfaces.

- :mod:`.session`: :func:`open_station` (the one assembly point) and :class:`StationSession`;
- :mod:`.plc`: the PLC sink (decisions to the line, acknowledgements back as events);
- :mod:`.demo`: the demo line simulator a demo station starts;
- :mod:`.reconcile`: end-of-batch reconciliation against the records;
- :mod:`.client`: the :class:`StationClient` protocol the HMI talks through, served in-process;
- :mod:`.bench`: ``inspector bench``, the production pipeline at the maximum rate.
"""

from inspector.config.station import StationConfig, load_station_config, override
from inspector.station.session import StationSession, new_batch_id, open_station

__all__ = ["StationConfig", "StationSession", "load_station_config", "new_batch_id", "open_station", "override"]
