"""The line simulator: a twin of the line PLC (conveyor, reject gate, positive release).

It stands in for the line PLC in tests, in the benchmark and in the demo, behind the same
protocol servers a real PLC offers, so the station's drivers run unchanged against it. It is
a twin: production code never imports it, except the demo assembly that starts one.

- :mod:`.line`: the line model (:class:`~.line.LineCore`, :class:`~.line.LineSimSettings`,
  :class:`~.line.Outcome`), protocol-free;
- :mod:`.servers`: the OPC UA, S7 and Modbus servers around it and :func:`~.servers.run_line_sim`;
- :mod:`.process`: :class:`~.process.LineSimProcess`, the simulator as a child process;
- :mod:`.cli`: ``inspector line-sim`` (also ``python -m inspector.plc.sim``);
- :mod:`.bench`: ``inspector plc-bench``, the decision round trip of the station's link against it.

The simulator shares the blocks' layout (:mod:`inspector.plc.layout`) and the OPC UA address
space (:mod:`inspector.plc.opcua_space`) with the drivers, never a driver itself (an import
contract checks this); only :mod:`.bench` drives a client link, as the station would.
"""
