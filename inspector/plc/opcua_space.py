"""The OPC UA address space of the PLC link: what the station's client and the PLC's server share.

One object (``OpcUaTags.station_object``) in namespace ``OpcUaTags.namespace_uri`` holds the
station tags (the station writes them), the PLC tags (the PLC writes them; read-only for a
client) and the ``SubmitDecision`` method. Node ids are strings (:class:`OpcUaTags`), and
every tag has a fixed variant type (docs/plc.md has the table).

``SubmitDecision(ItemId, Decision, ReasonCode, ExposureMs, Sequence)`` takes
:data:`METHOD_INPUTS` and answers :data:`PLC_TAGS` (echoed sequence, echoed item id, ack
status, PLC heartbeat), each argument with its tag's variant type.

Imported by the client driver (:mod:`inspector.plc.opcua`) and by the line simulator's
server, so neither side takes the address space from the other.
"""

from __future__ import annotations

from asyncua import ua

from inspector.plc.config import OpcUaTags

UINT32 = ua.VariantType.UInt32
UINT16 = ua.VariantType.UInt16
STATION_TAGS = ("item_id", "decision", "reason_code", "exposure_ms", "sequence", "station_heartbeat", "station_state")
PLC_TAGS = ("ack_sequence", "ack_item_id", "ack_status", "plc_heartbeat")
# SubmitDecision: input arguments in this order, output arguments = PLC_TAGS in that order.
METHOD_INPUTS = ("item_id", "decision", "reason_code", "exposure_ms", "sequence")
TAG_TYPES: dict[str, ua.VariantType] = {
    "item_id": UINT32,
    "decision": UINT16,
    "reason_code": UINT16,
    "exposure_ms": UINT32,
    "sequence": UINT32,
    "station_heartbeat": UINT16,
    "station_state": UINT16,
    "ack_sequence": UINT32,
    "ack_item_id": UINT32,
    "ack_status": UINT16,
    "plc_heartbeat": UINT16,
}
# Browse names on the server (clients address nodes by their string ids).
STATION_OBJECT_NAME = "Inspector"
SUBMIT_DECISION_NAME = "SubmitDecision"


def node_id(identifier: str, namespace_index: int) -> ua.NodeId:
    """A string node id in the namespace at ``namespace_index``."""
    return ua.NodeId(ua.String(identifier), ua.Int16(namespace_index))


def tag_node_ids(tags: OpcUaTags, namespace_index: int) -> dict[str, ua.NodeId]:
    """Tag name -> node id, for every tag of :data:`TAG_TYPES`."""
    return {name: node_id(getattr(tags, name), namespace_index) for name in TAG_TYPES}


def station_object_id(tags: OpcUaTags, namespace_index: int) -> ua.NodeId:
    """The object that owns the tags and the method."""
    return node_id(tags.station_object, namespace_index)


def submit_decision_id(tags: OpcUaTags, namespace_index: int) -> ua.NodeId:
    return node_id(tags.submit_decision, namespace_index)


def method_argument(name: str) -> ua.Argument:
    """One scalar argument of SubmitDecision, typed like the tag of that name."""
    arg = ua.Argument()
    arg.Name = name
    arg.DataType = ua.NodeId(ua.Int32(TAG_TYPES[name].value))
    arg.ValueRank = -1
    return arg


def submit_decision_arguments() -> tuple[list[ua.Argument], list[ua.Argument]]:
    """SubmitDecision's (input, output) argument descriptions."""
    return [method_argument(n) for n in METHOD_INPUTS], [method_argument(n) for n in PLC_TAGS]
