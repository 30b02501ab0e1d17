"""Paths, selectors and the two tree kinds."""

from __future__ import annotations

import pytest

from agents.templating import DictTree, ReplyTree, TemplateError, parse_path

CCR = DictTree(
    {
        "Session-Id": "s;1",
        "Subscription-Id": [
            {"Subscription-Id-Type": 1, "Subscription-Id-Data": "262010000000001"},
            {"Subscription-Id-Type": 0, "Subscription-Id-Data": "4915112345678"},
        ],
        "Multiple-Services-Credit-Control": [
            {"Rating-Group": 1, "Used-Service-Unit": {"CC-Input-Octets": 10}},
            {
                "Rating-Group": 2,
                "Used-Service-Unit": [{"CC-Input-Octets": 20}, {"CC-Input-Octets": 30}],
            },
        ],
    }
)
TREES = {"*req": CCR}


def read(text: str) -> list[object]:
    return parse_path(text).read(TREES)


def test_plain_path_and_repeated_groups_in_order() -> None:
    assert read("*req.Session-Id") == ["s;1"]
    assert read("*req.Multiple-Services-Credit-Control.Used-Service-Unit.CC-Input-Octets") == [
        10,
        20,
        30,
    ]
    assert read("*req.Missing") == []
    assert read("*nosuchtree.X") == []


def test_index_selects_one_instance() -> None:
    assert read("*req.Subscription-Id.Subscription-Id-Data[1]") == ["4915112345678"]
    assert read("*req.Subscription-Id.Subscription-Id-Data[0]") == ["262010000000001"]
    assert read("*req.Subscription-Id.Subscription-Id-Data[2]") == []


def test_sibling_selector() -> None:
    path = "*req.Subscription-Id.Subscription-Id-Data[~Subscription-Id-Type(0)]"
    assert read(path) == ["4915112345678"]
    assert read("*req.Subscription-Id.Subscription-Id-Data[~Subscription-Id-Type(^1$)]") == [
        "262010000000001"
    ]
    assert read("*req.Subscription-Id.Subscription-Id-Data[~Subscription-Id-Type(!1)]") == [
        "4915112345678"
    ]
    assert read("*req.Subscription-Id.Subscription-Id-Data[~Subscription-Id-Type(7)]") == []
    # several selectors must all hold for the same instance
    both = "*req.Multiple-Services-Credit-Control.Rating-Group[~Rating-Group(>1)|~Rating-Group(<3)]"
    assert read(both) == [2]


def test_index_in_the_middle_of_a_path() -> None:
    assert read("*req.Multiple-Services-Credit-Control[1].Used-Service-Unit.CC-Input-Octets") == [
        20,
        30,
    ]
    assert read(
        "*req.Multiple-Services-Credit-Control[1].Used-Service-Unit[1].CC-Input-Octets"
    ) == [30]
    assert read("*req.Multiple-Services-Credit-Control[1].Used-Service-Unit.Length") == [2]
    assert read("*req.Multiple-Services-Credit-Control[5].Rating-Group") == []
    assert read("*req.Session-Id[0].X") == []  # a leaf has nothing below it


def test_length() -> None:
    assert read("*req.Subscription-Id.Length") == [2]
    assert read("*req.Nothing.Length") == [0]


@pytest.mark.parametrize(
    "text",
    [
        "req.X",
        "*req",
        "*req..X",
        "*req.X[1",
        "*req.X[~Y(0)",
        "*req.X[Y(0)]",
        "*",
        "*req.X[~(a)]",
        "*req.X]",
        "*req.X[0]Y",
        "*req[0].X",
    ],
)
def test_bad_paths_raise_template_error(text: str) -> None:
    with pytest.raises(TemplateError):
        parse_path(text)


def test_writable_paths_refuse_selectors() -> None:
    with pytest.raises(TemplateError, match="read-only"):
        parse_path("*rep.X[~Y(0)]", writable=True)
    assert parse_path("*rep.Answer[1].Hdr.Name", writable=True).indexes == (1, None, None)


def test_reply_tree_set_append_compose_and_collapse() -> None:
    tree = ReplyTree()
    tree.set(("Result-Code",), "2001")
    tree.set(("Result-Code",), "5030")  # set replaces
    tree.append(("Tags",), "a")
    tree.append(("Tags",), "b")
    tree.compose(("Text",), "x")
    tree.compose(("Text",), "y")
    tree.set(("MSCC", "Granted-Service-Unit", "CC-Time"), "300")
    tree.set(("MSCC", "Rating-Group"), "1")  # same (last) MSCC instance
    tree.set(("MSCC", "Rating-Group"), "2", new_branch=True)  # a new MSCC instance
    assert tree.nodes["MSCC"] == [
        {"Granted-Service-Unit": [{"CC-Time": ["300"]}], "Rating-Group": ["1"]},
        {"Rating-Group": ["2"]},
    ]
    assert tree.to_data() == {
        "Result-Code": "5030",
        "Tags": ["a", "b"],
        "Text": "xy",
        "MSCC": [
            {"Granted-Service-Unit": {"CC-Time": "300"}, "Rating-Group": "1"},
            {"Rating-Group": "2"},
        ],
    }
    assert tree.get(("MSCC", "Rating-Group")) == ["1", "2"]
    tree.set(("Result-Code",), "2002", new_branch=True)
    assert tree.get(("Result-Code",)) == ["5030", "2002"]
    tree.remove(("Tags",))
    assert "Tags" not in tree.nodes
    tree.clear()
    assert not tree


def test_reply_tree_indexed_writes() -> None:
    tree = ReplyTree()
    tree.set(("Answer", "Hdr", "Name"), "a", indexes=(0, None, None))
    tree.set(("Answer", "Hdr", "Name"), "b", indexes=(1, None, None))
    tree.set(("Answer", "Hdr", "Ttl"), "60", indexes=(0, None, None))
    assert tree.to_data() == {
        "Answer": [{"Hdr": {"Name": "a", "Ttl": "60"}}, {"Hdr": {"Name": "b"}}]
    }
    with pytest.raises(IndexError):
        tree.set(("Answer", "Hdr"), "x", indexes=(5, None))
    tree.remove(("Answer",), indexes=(0,))
    assert tree.to_data() == {"Answer": {"Hdr": {"Name": "b"}}}


def test_reply_tree_from_data() -> None:
    tree = ReplyTree.from_data({"MaxUsage": 5, "Attributes": {"AlteredFields": ["A", "B"]}})
    assert tree.get(("Attributes", "AlteredFields")) == ["A", "B"]
    assert tree.to_data() == {"MaxUsage": 5, "Attributes": {"AlteredFields": ["A", "B"]}}


def test_raw_marker_is_accepted_and_ignored() -> None:
    assert read("*req.Session-Id[*raw]") == ["s;1"]
