"""The codec's fast paths give exactly what the general paths give: the CCA encoded straight
from a reply tree (``encode_answer_tree``), and path reads (through the AVP definitions looked up
once in the walk) as the plain walk over the AVPs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.diameter import codec
from agents.diameter.codec import DiameterMessage, _get, _path_keys, avp
from agents.templating import ReplyTree

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "diameter"
HOST, REALM = "ocs.test", "test"


def request() -> DiameterMessage:
    avps = [
        avp("Session-Id", "pgw.test;1;2"),
        avp("Origin-Host", "pgw.test"),
        avp("Origin-Realm", "test"),
        avp("Auth-Application-Id", 4),
        avp("CC-Request-Type", 2),
        avp("CC-Request-Number", 3),
    ]
    message = DiameterMessage(272, 4, codec.FLAG_REQUEST | codec.FLAG_PROXIABLE, 7, 9, avps)
    return codec.decode(codec.encode(message))


def general(req: DiameterMessage, nodes: dict[str, list[Any]]) -> bytes:
    """What the agent encoded before: to_data, the head keys dropped, answer_to, encode."""
    data = ReplyTree(nodes).to_data()
    for key in ("Session-Id", "Origin-Host", "Origin-Realm"):
        data.pop(key, None)
    answer = codec.answer_to(req, None, data, origin_host=HOST, origin_realm=REALM)
    return codec.encode(answer)


scalars = st.one_of(
    st.sampled_from(["2001", "4012", "0", "60", "3600"]),
    st.integers(min_value=0, max_value=2**31 - 1),
    st.none(),
)
units = st.fixed_dictionaries({}, optional={"CC-Time": st.lists(scalars, min_size=1, max_size=2)})
mscc = st.fixed_dictionaries(
    {},
    optional={
        "Granted-Service-Unit": st.lists(units, min_size=1, max_size=2),
        "Result-Code": st.lists(scalars, min_size=1, max_size=2),
        "Rating-Group": st.lists(scalars, min_size=1, max_size=1),
        "Validity-Time": st.lists(scalars, min_size=1, max_size=1),
    },
)
trees = st.fixed_dictionaries(
    {},
    optional={
        "Session-Id": st.just(["from the tree"]),
        "Origin-Host": st.just(["tree.host"]),
        "Result-Code": st.lists(scalars, min_size=1, max_size=3),
        "Auth-Application-Id": st.lists(scalars, min_size=1, max_size=1),
        "CC-Request-Type": st.lists(scalars, min_size=1, max_size=1),
        "CC-Request-Number": st.lists(scalars, min_size=1, max_size=1),
        "Multiple-Services-Credit-Control": st.lists(mscc, min_size=1, max_size=3),
    },
)


@settings(max_examples=300)
@given(trees)
def test_answer_from_the_tree_equals_the_general_path(nodes: dict[str, list[Any]]) -> None:
    req = request()
    fast = codec.encode_answer_tree(req, nodes, origin_host=HOST, origin_realm=REALM)
    assert fast is not None
    assert fast == general(req, nodes)


def test_the_voice_cca_and_its_cached_avps() -> None:
    nodes: dict[str, list[Any]] = {
        "Session-Id": ["x"],
        "Result-Code": ["2001"],
        "Origin-Host": ["x"],
        "CC-Request-Type": ["2"],
        "Multiple-Services-Credit-Control": [{"Granted-Service-Unit": [{"CC-Time": ["60"]}]}],
    }
    req = request()
    first = codec.encode_answer_tree(req, nodes, origin_host=HOST, origin_realm=REALM)
    again = codec.encode_answer_tree(req, nodes, origin_host=HOST, origin_realm=REALM)
    assert first == again == general(req, nodes)
    answer = codec.decode(first or b"")
    assert answer.session_id == "pgw.test;1;2" and answer.first(codec.AVP_RESULT_CODE) == 2001
    assert answer.hbh == 7 and answer.e2e == 9 and answer.flags == codec.FLAG_PROXIABLE


def test_a_text_and_a_number_of_equal_value_are_cached_apart() -> None:
    req = request()
    as_text = codec.encode_answer_tree(
        req, {"Error-Message": ["60"]}, origin_host=HOST, origin_realm=REALM
    )
    as_float = codec.encode_answer_tree(
        req, {"Error-Message": [60.0]}, origin_host=HOST, origin_realm=REALM
    )
    assert as_text is not None and as_float is not None
    assert codec.decode(as_text).first(281) == "60"
    assert codec.decode(as_float).first(281) == "60.0"


def test_what_only_the_general_path_encodes_is_left_to_it() -> None:
    req = request()
    cases: list[dict[str, list[Any]]] = [
        {"Result-Code": ["2001"], "Unknown-AVP-Name": ["1"]},  # general path: encode error
        {"Result-Code": ["2001"], "CC-Request-Type": [[1, 2]]},  # a list leaf: repeated AVPs
        {"Result-Code": ["2001"], "Multiple-Services-Credit-Control": ["not a group"]},
        {"Result-Code": ["2001"], "CC-Time": [{"a group": ["where a number is due"]}]},
        {"Result-Code": [True]},
        {"Result-Code": ["2001"], "268": ["4012"]},  # a head AVP by another name
    ]
    for nodes in cases:
        assert codec.encode_answer_tree(req, nodes, origin_host=HOST, origin_realm=REALM) is None


# ----------------------------------------------------------------------------- path reads
PATHS = [
    ("Session-Id",),
    ("CC-Request-Type",),
    ("Multiple-Services-Credit-Control",),
    ("Multiple-Services-Credit-Control", "Rating-Group"),
    ("Multiple-Services-Credit-Control", "Used-Service-Unit", "CC-Total-Octets"),
    ("Multiple-Services-Credit-Control", "Requested-Service-Unit", "CC-Total-Octets"),
    ("Subscription-Id", "Subscription-Id-Data"),
    ("Service-Information", "PS-Information", "Called-Station-Id"),
    ("Service-Information", "IMS-Information", "Called-Party-Address"),
    ("No-Such-AVP",),
    ("Session-Id", "Not-Grouped"),
]


def walked(message: DiameterMessage, path: tuple[str, ...]) -> list[Any]:
    """The reads as the walk (_get over the top level) gives them."""
    keys = _path_keys(path)
    if keys[0] is None:
        return []
    return _get(message.avps, keys, 0)


def same(left: list[Any], right: list[Any]) -> bool:
    if len(left) != len(right):
        return False
    return all(a is b or a == b for a, b in zip(left, right, strict=True))


def test_reads_equal_the_walk_on_the_vectors() -> None:
    for vector in sorted(VECTORS.glob("*ccr*.hex")):
        data = bytes.fromhex(vector.read_text().split("#")[0].replace("\n", "").strip())
        message = codec.decode(data)
        for path in PATHS:
            assert same(message.get(path), walked(codec.decode(data), path)), (vector, path)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=9)),
        max_size=6,
    )
)
def test_reads_keep_message_order_over_repeated_groups(
    groups: list[tuple[int, int]],
) -> None:
    avps = [avp("Session-Id", "s")]
    for rating_group, octets in groups:
        avps.append(
            avp(
                "Multiple-Services-Credit-Control",
                {"Rating-Group": rating_group, "Used-Service-Unit": {"CC-Total-Octets": octets}},
            )
        )
    data = codec.encode(DiameterMessage(272, 4, codec.FLAG_REQUEST, 1, 1, avps))
    message = codec.decode(data)
    assert message.get(("Multiple-Services-Credit-Control", "Rating-Group")) == [
        rating_group for rating_group, _ in groups
    ]
    octets_path = ("Multiple-Services-Credit-Control", "Used-Service-Unit", "CC-Total-Octets")
    assert message.get(octets_path) == [octets for _, octets in groups]


def test_a_broken_group_fails_only_the_reads_through_it() -> None:
    good = avp("Session-Id", "s")
    broken = codec.Avp(456, 0, codec.AVP_FLAG_MANDATORY, b"\x00\x00\x01")  # MSCC, bad payload
    message = codec.decode(
        codec.encode(DiameterMessage(272, 4, codec.FLAG_REQUEST, 1, 1, [good, broken]))
    )
    assert message.get(("Session-Id",)) == ["s"]
    try:
        message.get(("Multiple-Services-Credit-Control", "Rating-Group"))
    except codec.DiameterDecodeError:
        pass
    else:
        raise AssertionError("a read through a broken group must raise DiameterDecodeError")
