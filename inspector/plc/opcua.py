"""OPC UA driver (asyncua client on an asyncio loop owned by the link thread).

The address space it talks to (tag names, variant types, the SubmitDecision method, node
ids) is :mod:`inspector.plc.opcua_space`, shared with the line simulator's server.

Security: Basic256Sha256 with SignAndEncrypt, the station's application certificate,
and a trust list (asyncua ``TrustStore`` + ``CertificateValidator``): a server whose
certificate is not trusted is refused, and the server in turn refuses an untrusted station
certificate. Policy ``None`` is accepted only in demo mode (the config refuses it
otherwise) and logs a warning at every connect.

Handshake per item (``handshake`` in the config):

- ``method`` (default): one Call of the PLC's ``SubmitDecision`` method with item id,
  decision, reason code, exposure time and sequence; its output arguments are the PLC
  block (echoed sequence, echoed item id, ack status, PLC heartbeat). One request per item.
  The connect checks that the method exists and refuses the link with a clear error if not.
- ``write_read``: one Write of the decision tags (sequence last), then a Read of the PLC
  block on the same pass of the loop. Two requests, but any PLC with the tags can do it.

Both paths judge the PLC block the same way (:meth:`OpcUaLink._parse`).

Every value goes with an explicit variant type (UInt32 / UInt16); a value read back with
another type, a bad status or out of range is refused (:class:`PlcValueError`). Writes go
only to the station's own tags. Each request runs under ``asyncio.wait_for`` with the I/O
timeout, so a dead server is a lost link within the watchdog budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.utils import ServiceError
from asyncua.crypto import security_policies
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from inspector.plc.base import PlcIoError, PlcLink, PlcProtocolError, PlcSecurityError, PlcValueError
from inspector.plc.config import OpcUaConfig
from inspector.plc.layout import U16_MAX, U32_MAX, DecisionWords, PlcWords, StationStateCode
from inspector.plc.opcua_space import (
    METHOD_INPUTS,
    PLC_TAGS,
    STATION_TAGS,
    TAG_TYPES,
    UINT16,
    UINT32,
    station_object_id,
    submit_decision_id,
    tag_node_ids,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_DISCONNECT_TIMEOUT_S = 0.3
_MAX = {UINT32: U32_MAX, UINT16: U16_MAX}


def _status_name(code: int) -> str:
    try:
        return str(ua.StatusCode(ua.UInt32(code)).name)
    except Exception:
        return hex(code)


def _is_security_name(name: str) -> bool:
    return any(word in name for word in ("Certificate", "Security", "UserAccessDenied", "IdentityToken"))


def _is_security_failure(exc: BaseException) -> bool:
    return _is_security_name(_status_name(exc.code) if isinstance(exc, ServiceError) else type(exc).__name__)


def _check_station_tags(values: dict[str, int]) -> None:
    foreign = [k for k in values if k not in STATION_TAGS]
    if foreign:
        raise PlcSecurityError(f"OPC UA write to {', '.join(foreign)} refused: not a station tag")


async def _bounded(coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
    # asyncio.timeout, not wait_for: no extra task per request (a tenth of a millisecond each).
    async with asyncio.timeout(timeout_s):
        return await coro


class OpcUaLink(PlcLink):
    protocol = "opcua"

    def __init__(self, config: OpcUaConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._object: ua.NodeId | None = None  # SubmitDecision's object and method (handshake: method)
        self._method: ua.NodeId | None = None
        self._prefetched: list[ua.DataValue] | None = None  # the echo read in the decision's request

    # -- running coroutines on the link thread's loop -----------------------------------------
    def _run_io(self, coro: Coroutine[Any, Any, T], timeout_s: float, what: str) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            return self._loop.run_until_complete(_bounded(coro, timeout_s))
        except TimeoutError as exc:
            raise PlcIoError(f"OPC UA {what}: no answer within {timeout_s * 1e3:.0f} ms") from exc
        except asyncio.CancelledError as exc:
            # asyncua's own timeouts (wait_for2) can surface our timeout's cancellation as a CancelledError
            # when its answer raced it: a request without an answer in time all the same, never a dead thread.
            raise PlcIoError(f"OPC UA {what}: cancelled after {timeout_s * 1e3:.0f} ms ({type(exc).__name__})") from exc
        except (ServiceError, UaStatusCodeError) as exc:
            if _is_security_failure(exc):
                raise PlcSecurityError(f"OPC UA {what} refused: {exc} ({type(exc).__name__})") from exc
            raise PlcIoError(f"OPC UA {what}: {type(exc).__name__}: {exc}") from exc
        except (OSError, UaError, ConnectionError) as exc:
            raise PlcIoError(f"OPC UA {what}: {type(exc).__name__}: {exc}") from exc

    # -- tag access (link thread) ------------------------------------------------------------
    def write_tags(self, values: dict[str, int]) -> None:
        """Write station tags in one request; any other tag is refused (PlcSecurityError)."""
        _check_station_tags(values)
        self._check_write_results(values, self._run_io(self._write(values), self.io_timeout_s, "write"))

    def write_tags_then_read_plc(self, values: dict[str, int]) -> None:
        """Write station tags, then read the PLC block, on one pass of the loop; the read is kept
        for the next :meth:`_do_read_plc` (the first echo poll), which judges it as usual."""
        _check_station_tags(values)
        client = self._require()
        ids = [self._nodes[k] for k in PLC_TAGS]

        async def both() -> tuple[list[ua.StatusCode], list[ua.DataValue]]:
            results = await self._write(values)
            return results, await client.uaclient.read_attributes(ids, AttributeIds.Value)

        self._prefetched = None
        results, dvs = self._run_io(both(), self.io_timeout_s, "write")
        self._check_write_results(values, results)
        self._prefetched = dvs

    def submit_decision(self, values: dict[str, int]) -> None:
        """Call SubmitDecision (one request); its output arguments are kept for the next
        :meth:`_do_read_plc`, which judges them like a Read of the PLC block."""
        client = self._require()
        if self._object is None or self._method is None:
            raise PlcIoError("OPC UA SubmitDecision: method not resolved")
        args = [ua.Variant(int(values[k]), TAG_TYPES[k]) for k in METHOD_INPUTS]
        request = ua.CallMethodRequest(ObjectId=self._object, MethodId=self._method, InputArguments=args)
        self._prefetched = None
        results = self._run_io(client.uaclient.call([request]), self.io_timeout_s, "SubmitDecision")
        if len(results) != 1:
            raise PlcProtocolError(f"OPC UA SubmitDecision: {len(results)} results for one call")
        result = results[0]
        if not result.StatusCode.is_good():
            name = str(result.StatusCode.name)
            error = PlcSecurityError if _is_security_name(name) else PlcProtocolError
            raise error(f"OPC UA SubmitDecision refused: {name}")
        outputs = result.OutputArguments or []
        self._prefetched = [ua.DataValue(v if isinstance(v, ua.Variant) else None) for v in outputs]

    def _write(self, values: dict[str, int]) -> Coroutine[Any, Any, list[ua.StatusCode]]:
        client = self._require()
        ids = [self._nodes[k] for k in values]
        dvs = [ua.DataValue(ua.Variant(int(v), TAG_TYPES[k])) for k, v in values.items()]
        return client.uaclient.write_attributes(ids, dvs, AttributeIds.Value)

    @staticmethod
    def _check_write_results(values: dict[str, int], results: list[ua.StatusCode]) -> None:
        bad = [f"{k}: {r.name}" for k, r in zip(values, results, strict=True) if not r.is_good()]
        if bad:
            raise PlcProtocolError(f"OPC UA write refused: {'; '.join(bad)}")

    def read_tags(self, names: tuple[str, ...]) -> dict[str, int]:
        """Read tags in one request; a bad status, another variant type or a value out of range is refused."""
        client = self._require()
        ids = [self._nodes[k] for k in names]
        dvs = self._run_io(client.uaclient.read_attributes(ids, AttributeIds.Value), self.io_timeout_s, "read")
        return self._parse(names, dvs)

    def _parse(self, names: tuple[str, ...], dvs: list[ua.DataValue]) -> dict[str, int]:
        if len(dvs) != len(names):
            raise PlcValueError(f"OPC UA read: {len(dvs)} values for {len(names)} tags")
        out: dict[str, int] = {}
        faults: list[str] = []
        for name, dv in zip(names, dvs, strict=True):
            fault = self._check_value(name, dv)
            if fault or dv.Value is None:
                faults.append(fault or f"{name}: no value")
            else:
                out[name] = int(dv.Value.Value)
        if faults:
            raise PlcValueError("; ".join(faults), heartbeat=out.get("plc_heartbeat"))
        return out

    @staticmethod
    def _check_value(name: str, dv: ua.DataValue) -> str:
        """Why a value read back is refused ('' when it is valid)."""
        if dv.StatusCode is not None and not dv.StatusCode.is_good():
            return f"{name}: status {dv.StatusCode.name}"
        var = dv.Value
        expected = TAG_TYPES[name]
        if var is None or var.VariantType != expected:
            got = "nothing" if var is None else var.VariantType.name
            return f"{name}: expected {expected.name}, got {got}"
        value = var.Value
        if type(value) is not int or not 0 <= value <= _MAX[expected]:
            return f"{name}: value {value!r} out of range for {expected.name}"
        return ""

    def _require(self) -> Client:
        if self._client is None:
            raise PlcIoError("OPC UA client not connected")
        return self._client

    # -- hooks --------------------------------------------------------------------------------
    def _do_connect(self, timeout_s: float) -> None:
        self._do_disconnect()
        sec = self.cfg.security
        client = Client(self.cfg.endpoint_url, timeout=timeout_s)
        client.application_uri = sec.application_uri
        client.name = client.description = "Inspector station"
        client.session_timeout = 60_000
        self._client = client
        if sec.policy == "None":
            log.warning(
                "OPC UA link to %s uses security policy None: allowed in demo mode only, never on a production line",
                self.cfg.endpoint_url,
            )
        else:
            self._run_io(self._secure(client), timeout_s, "security setup")
        self._run_io(client.connect(), timeout_s, f"connect to {self.cfg.endpoint_url}")
        ns = self._run_io(client.get_namespace_index(self.cfg.tags.namespace_uri), timeout_s, "namespace")
        tags = self.cfg.tags
        self._nodes = tag_node_ids(tags, ns)
        self._object = self._method = None
        if self.cfg.handshake == "method":
            obj = station_object_id(tags, ns)
            method = submit_decision_id(tags, ns)
            self._run_io(self._check_method(client, method), timeout_s, "method lookup")
            self._object, self._method = obj, method

    async def _check_method(self, client: Client, method: ua.NodeId) -> None:
        dv = (await client.uaclient.read_attributes([method], AttributeIds.NodeClass))[0]
        if (dv.StatusCode is not None and not dv.StatusCode.is_good()) or dv.Value is None:
            found = "no such node"
        elif dv.Value.Value != ua.NodeClass.Method:
            found = f"node class {dv.Value.Value}"
        else:
            return
        raise PlcProtocolError(
            f"OPC UA server {self.cfg.endpoint_url} has no method {self.cfg.tags.submit_decision} ({found}): "
            "configure it on the PLC, or set handshake: write_read"
        )

    async def _secure(self, client: Client) -> None:
        sec = self.cfg.security
        assert sec.certificate is not None and sec.private_key is not None and sec.trusted_certificates is not None
        crls = [sec.revocation_lists] if sec.revocation_lists is not None else []
        store = TrustStore([sec.trusted_certificates], crls)
        await store.load()
        # Trust is off in asyncua until a validator with a trust store is set: set it, for the server's cert.
        client.certificate_validator = CertificateValidator(
            CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_SERVER, store
        )
        await client.set_security(
            security_policies.SecurityPolicyBasic256Sha256,
            certificate=str(sec.certificate),
            private_key=str(sec.private_key),
            server_certificate=str(sec.server_certificate) if sec.server_certificate is not None else None,
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )

    def _do_disconnect(self) -> None:
        self._prefetched = None
        client, self._client = self._client, None
        loop = self._loop
        if client is None or loop is None:
            return
        try:
            loop.run_until_complete(asyncio.wait_for(client.disconnect(), _DISCONNECT_TIMEOUT_S))
        except (Exception, asyncio.CancelledError) as exc:  # see _run_io: a raced cancellation too
            log.debug("OPC UA disconnect: %s", exc)
            client.disconnect_socket()
        self._cancel_leftovers(loop)

    def _do_release(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        self._cancel_leftovers(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    @staticmethod
    def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
        # asyncua keeps background tasks (keepalive, channel renewal); end them so none outlives the link.
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    def _do_write_decision(self, words: DecisionWords) -> None:
        self.write_tags(
            {
                "item_id": words.item_id,
                "decision": words.decision,
                "reason_code": words.reason_code,
                "exposure_ms": words.exposure_ms,
            }
        )

    def _do_write_decision_sequence(self, words: DecisionWords, sequence: int) -> None:
        values = {
            "item_id": words.item_id,
            "decision": words.decision,
            "reason_code": words.reason_code,
            "exposure_ms": words.exposure_ms,
            "sequence": sequence,
        }
        if self.cfg.handshake == "method":
            self.submit_decision(values)  # one request: the acknowledgement comes back in its result
        else:
            # One Write service call (the server applies the nodes in order, the sequence last),
            # and the first echo poll right behind it on the same pass of the loop.
            self.write_tags_then_read_plc(values)

    def _do_write_sequence(self, sequence: int) -> None:
        self.write_tags({"sequence": sequence})

    def _do_write_status(self, heartbeat: int, state: StationStateCode) -> None:
        self.write_tags({"station_heartbeat": heartbeat, "station_state": int(state)})

    def _do_read_plc(self) -> PlcWords:
        dvs, self._prefetched = self._prefetched, None
        v = self.read_tags(PLC_TAGS) if dvs is None else self._parse(PLC_TAGS, dvs)
        return PlcWords(v["ack_sequence"], v["ack_item_id"], v["ack_status"], v["plc_heartbeat"])
