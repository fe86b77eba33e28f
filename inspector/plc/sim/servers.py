"""The line simulator's protocol servers: the line model behind a real PLC protocol server.

Each server is the real server library (asyncua ``Server``, snap7 ``Server``, pymodbus
``ModbusTcpServer``) on 127.0.0.1 serving the station and PLC blocks of docs/plc.md, with
:class:`~inspector.plc.sim.line.LineCore` behind them. The library of a protocol is imported
only when that server runs. :func:`run_line_sim` serves until stopped and returns the summary.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from inspector.plc.layout import (
    PLC_BLOCK_BYTES,
    PLC_BLOCK_REGISTERS,
    STATION_BLOCK_BYTES,
    STATION_BLOCK_REGISTERS,
    PlcWords,
    StationWords,
    bytes_to_registers,
    pack_plc,
    registers_to_bytes,
    unpack_station,
)
from inspector.plc.sim.line import (
    INJECTIONS,
    MODBUS_INJECTIONS,
    OPCUA_INJECTIONS,
    PROTOCOLS,
    TICK_S,
    LineCore,
    LineSimSettings,
    injection_kind,
)
from inspector.realtime import prepare_for_latency, raise_thread_priority

log = logging.getLogger(__name__)

StopFlag = threading.Event
ReadyCallback = Callable[[int], None]


async def _tick_until_stopped(core: LineCore, stop: StopFlag, on_heartbeat: Callable[[], Any] | None) -> None:
    while not stop.is_set():
        if core.tick() and on_heartbeat is not None:
            result = on_heartbeat()
            if asyncio.iscoroutine(result):
                await result
        if core.done():
            stop.set()
            break
        await asyncio.sleep(TICK_S)


async def _serve_modbus(core: LineCore, s: LineSimSettings, stop: StopFlag, ready: ReadyCallback) -> None:
    from pymodbus.constants import ExcCodes
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    size = max(s.modbus_station_base + STATION_BLOCK_REGISTERS, s.modbus_plc_base + PLC_BLOCK_REGISTERS)
    plc_lo, plc_hi = s.modbus_plc_base, s.modbus_plc_base + PLC_BLOCK_REGISTERS

    def put_plc(registers: list[int], start: int, words: PlcWords) -> None:
        off = plc_lo - start
        registers[off : off + PLC_BLOCK_REGISTERS] = bytes_to_registers(pack_plc(words))

    async def action(
        _fc: int, start: int, address: int, count: int, registers: list[int], values: list[int] | list[bool] | None
    ) -> ExcCodes | None:
        put_plc(registers, start, core.current_plc())  # reads see the newest heartbeat and echo
        if values is None:
            if address < plc_hi and plc_lo < address + count and core.take_read_exception():
                log.warning("read of the PLC block answered with an exception (injected)")
                return ExcCodes.DEVICE_FAILURE
            return None
        if address < plc_hi and plc_lo < address + count:
            core.foreign_writes += 1
            log.warning("refused a station write to PLC registers %d..%d", address, address + count - 1)
            return ExcCodes.ILLEGAL_ADDRESS
        merged = list(registers)
        merged[address - start : address - start + count] = [int(v) for v in values]
        off = s.modbus_station_base - start
        station = unpack_station(registers_to_bytes(merged[off : off + STATION_BLOCK_REGISTERS]))
        result = core.on_station_block(station)
        if result is not None:
            put_plc(registers, start, result[0])
        return None

    device = SimDevice(
        id=0, simdata=[SimData(address=0, count=size, values=0, datatype=DataType.REGISTERS)], action=action
    )
    server = ModbusTcpServer(device, address=(s.host, s.port))
    await server.serve_forever(background=True)
    try:
        transport: Any = server.transport
        ready(int(transport.sockets[0].getsockname()[1]))
        await _tick_until_stopped(core, stop, None)
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


async def _serve_opcua(core: LineCore, s: LineSimSettings, stop: StopFlag, ready: ReadyCallback) -> None:
    from asyncua import ua
    from asyncua.common.callback import CallbackType
    from asyncua.crypto.truststore import TrustStore
    from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
    from asyncua.server.server import Server
    from asyncua.ua.status_codes import StatusCodes

    from inspector.plc import opcua_space as space
    from inspector.plc.config import OpcUaTags
    from inspector.plc.opcua_space import METHOD_INPUTS, PLC_TAGS, STATION_TAGS, TAG_TYPES

    logging.getLogger("asyncua.server.address_space").setLevel(logging.WARNING)  # it logs every method call at INFO

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://{s.host}:{s.port}/inspector")
    server.set_server_name("Inspector line simulator")
    await server.set_application_uri("urn:inspector:linesim")
    if s.security == "basic256sha256":
        if s.certificate is None or s.private_key is None or s.trust_dir is None:
            raise ValueError("--security basic256sha256 needs --cert, --key and --trust-dir")
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        await server.load_certificate(str(s.certificate))
        await server.load_private_key(str(s.private_key))
        store = TrustStore([s.trust_dir], [])
        await store.load()
        server.set_certificate_validator(
            CertificateValidator(
                CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store
            )
        )
    else:
        log.warning("OPC UA line simulator without security (policy None): demo only")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(s.opcua_namespace)
    tags = OpcUaTags(namespace_uri=s.opcua_namespace)
    parent = await server.nodes.objects.add_object(space.station_object_id(tags, ns), space.STATION_OBJECT_NAME)
    nodes: dict[str, ua.NodeId] = {}
    for name, node_id in space.tag_node_ids(tags, ns).items():
        node = await parent.add_variable(node_id, name, ua.Variant(0, TAG_TYPES[name]))
        if name in STATION_TAGS:
            await node.set_writable()  # PLC tags stay read-only for clients: the server refuses writes
        nodes[name] = node.nodeid
    station_ids = {nodes[n] for n in STATION_TAGS}

    def read(name: str) -> int:
        value = server.read_attribute_value(nodes[name]).Value
        return int(value.Value) if value is not None and isinstance(value.Value, int) else 0

    def read_station() -> StationWords:
        return StationWords(*(read(n) for n in STATION_TAGS))  # same field order

    def plc_values(words: PlcWords) -> dict[str, int]:
        return {  # the echoed sequence last, like a PLC should
            "ack_item_id": words.ack_item_id,
            "ack_status": words.ack_status,
            "plc_heartbeat": words.heartbeat,
            "ack_sequence": words.ack_sequence,
        }

    async def write_plc(words: PlcWords, injection: str | None = None) -> None:
        for name, v in plc_values(words).items():
            await server.write_attribute_value(nodes[name], ua.DataValue(ua.Variant(v, TAG_TYPES[name])))
        if injection == "bad_type":
            # The address space refuses a mistyped write; a read callback serves the wrong type until the next write.
            def wrong_type(_nodeid: Any, _attr: Any) -> Any:
                return ua.DataValue(ua.Variant("accepted", ua.VariantType.String))

            server.set_attribute_value_callback(nodes["ack_status"], wrong_type)

    async def post_write(event: Any, _dispatcher: Any) -> None:
        written = [wv.NodeId for wv in event.request_params.NodesToWrite]
        if not any(n in station_ids for n in written):
            return
        result = core.on_station_block(read_station())
        if result is not None:
            await write_plc(*result)

    async def submit_decision(_parent: Any, *args: Any) -> Any:
        """SubmitDecision(ItemId, Decision, ReasonCode, ExposureMs, Sequence) -> the PLC block.

        The method form of the handshake (one request per item): the tags are updated as a
        Write would, the PLC logic runs, and the acknowledgement is the method's result."""
        types = [TAG_TYPES[n] for n in METHOD_INPUTS]
        if len(args) != len(types) or any(
            not isinstance(a, ua.Variant) or a.VariantType != t for a, t in zip(args, types, strict=False)
        ):
            log.warning("SubmitDecision refused: arguments %r", args)
            return ua.StatusCode(ua.UInt32(StatusCodes.BadInvalidArgument))
        values = {n: int(a.Value) for n, a in zip(METHOD_INPUTS, args, strict=True)}
        refused = s.inject.get(values["item_id"]) == "call_refused"
        core.note_method_call(refused=refused)
        if refused:  # the PLC takes nothing: the item reaches the gate undecided
            return ua.StatusCode(ua.UInt32(StatusCodes.BadUserAccessDenied))
        for name, v in values.items():
            await server.write_attribute_value(nodes[name], ua.DataValue(ua.Variant(v, TAG_TYPES[name])))
        result = core.on_station_block(read_station())
        words, injection = (core.current_plc(), None) if result is None else result
        if result is not None:
            await write_plc(words, injection)
        ack = plc_values(words)
        out = [ua.Variant(ack[n], TAG_TYPES[n]) for n in PLC_TAGS]
        if injection == "bad_type":
            out[PLC_TAGS.index("ack_status")] = ua.Variant("accepted", ua.VariantType.String)
        return out

    inputs, outputs = space.submit_decision_arguments()
    method_id = space.submit_decision_id(tags, ns)
    await parent.add_method(method_id, space.SUBMIT_DECISION_NAME, submit_decision, inputs, outputs)
    server.subscribe_server_callback(CallbackType.PostWrite, post_write)
    await server.start()
    try:
        ready(int(server.bserver.port) if server.bserver is not None else s.port)

        released = [core.echoes_released]

        async def heartbeat() -> None:
            if core.echoes_released != released[0]:  # an echo published late (late_echo): the whole block
                released[0] = core.echoes_released
                await write_plc(core.current_plc())
                return
            await server.write_attribute_value(
                nodes["plc_heartbeat"], ua.DataValue(ua.Variant(core.plc_heartbeat, ua.VariantType.UInt16))
            )

        await _tick_until_stopped(core, stop, heartbeat)
    finally:
        await server.stop()


def _serve_s7(core: LineCore, s: LineSimSettings, stop: StopFlag, ready: ReadyCallback) -> None:
    import snap7
    from snap7.server import EVC_DATA_WRITE
    from snap7.type import SrvArea

    size = max(s.s7_station_offset + STATION_BLOCK_BYTES, s.s7_plc_offset + PLC_BLOCK_BYTES, 64)
    db = bytearray(size)
    plc_lo, plc_hi = s.s7_plc_offset, s.s7_plc_offset + PLC_BLOCK_BYTES
    server = snap7.Server(log=False)
    server.register_area(SrvArea.DB, s.s7_db, db)

    def put_plc(words: PlcWords) -> None:
        # Under the server's area lock, so a client never reads a half-written echo.
        server.lock_area(SrvArea.DB, s.s7_db)
        try:
            db[plc_lo:plc_hi] = pack_plc(words)
        finally:
            server.unlock_area(SrvArea.DB, s.s7_db)

    def on_event(event: Any) -> None:
        if event.EvtCode != EVC_DATA_WRITE or event.EvtParam1 != SrvArea.DB or event.EvtParam2 != s.s7_db:
            return
        start, length = int(event.EvtParam3), int(event.EvtParam4)
        if start < plc_hi and plc_lo < start + length:
            # snap7 has no write protection: restore the PLC's words and count the intrusion.
            core.foreign_writes += 1
            log.warning("station wrote into the PLC block (DBB%d, %d bytes): restored", start, length)
            put_plc(core.current_plc())
        server.lock_area(SrvArea.DB, s.s7_db)
        try:
            block = bytes(db[s.s7_station_offset : s.s7_station_offset + STATION_BLOCK_BYTES])
        finally:
            server.unlock_area(SrvArea.DB, s.s7_db)
        result = core.on_station_block(unpack_station(block))
        if result is not None:
            put_plc(result[0])

    server.set_events_callback(on_event)
    server.start_to(s.host, s.port)
    try:
        sock = server.server_socket
        ready(int(sock.getsockname()[1]) if sock is not None else s.port)
        while not stop.is_set():
            if core.tick():
                put_plc(core.current_plc())
            if core.done():
                break
            stop.wait(TICK_S)
    finally:
        server.stop()


def run_line_sim(
    settings: LineSimSettings, *, stop: StopFlag | None = None, on_ready: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Serve until stopped; calls ``on_ready(port)`` once serving and returns the summary."""
    if settings.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {settings.protocol!r}; choose {', '.join(PROTOCOLS)}")
    kinds = {k: injection_kind(v)[0] for k, v in settings.inject.items()}
    bad = {k: v for k, v in kinds.items() if v not in INJECTIONS}
    if bad:
        raise ValueError(f"unknown fault injection {bad}; choose {', '.join(INJECTIONS)}")
    only_ua = {k: v for k, v in kinds.items() if v in OPCUA_INJECTIONS}
    if only_ua and settings.protocol != "opcua":
        raise ValueError(f"fault injection {only_ua} exists only for --protocol opcua")
    only_modbus = {k: v for k, v in kinds.items() if v in MODBUS_INJECTIONS}
    if only_modbus and settings.protocol != "modbus":
        raise ValueError(f"fault injection {only_modbus} exists only for --protocol modbus")
    core = LineCore(settings)
    flag = stop or threading.Event()
    # A PLC answers from its own hardware in bounded time: on a shared test PC the simulator
    # gets the station's priority (threads started below inherit it), where permitted.
    raise_thread_priority()
    bound = {"port": settings.port}

    def ready(port: int) -> None:
        bound["port"] = port
        prepare_for_latency()  # a PLC answers in bounded time: no collector pauses over the server
        if on_ready is not None:
            on_ready(port)

    if settings.protocol == "s7":
        _serve_s7(core, settings, flag, ready)
    elif settings.protocol == "modbus":
        asyncio.run(_serve_modbus(core, settings, flag, ready))
    else:
        asyncio.run(_serve_opcua(core, settings, flag, ready))
    core.settle_gate()
    summary = core.summary(bound["port"])
    summary["outcomes"] = {str(k): v for k, v in sorted(core.outcomes.items())}
    return summary
