"""Registry behaviour on SQLite and PostgreSQL: things, groups, hierarchies, dynamic groups, memberships."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from edgewise.cloud.errors import (
    AlreadyExistsError,
    CloudConflictError,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
    VersionConflictError,
)
from edgewise.cloud.registry import rules, service


def test_create_thing_stores_name_type_and_attributes(session: Session) -> None:
    service.create_thing(session, "sensor-1", thing_type_name="probe", attributes={"site": "berlin"})
    session.expunge_all()
    thing = service.get_thing(session, "sensor-1")
    assert (thing.name, thing.thing_type_name, thing.attributes, thing.version) == (
        "sensor-1",
        "probe",
        {"site": "berlin"},
        1,
    )
    assert thing.created_at.tzinfo is not None


def test_create_thing_twice_is_refused(session: Session) -> None:
    service.create_thing(session, "sensor-1")
    with pytest.raises(AlreadyExistsError, match="'sensor-1' already exists"):
        service.create_thing(session, "sensor-1")


@pytest.mark.parametrize(
    ("name", "attributes", "field"),
    [
        ("has space", {}, "thingName"),
        ("x" * 129, {}, "thingName"),
        ("", {}, "thingName"),
        ("ok", {"bad key!": "v"}, "attributes"),
        ("ok", {"k": "bad value"}, "attributes.k"),
        ("ok", {f"k{i}": "v" for i in range(51)}, "attributes"),
    ],
)
def test_create_thing_with_bad_input_names_the_field(
    session: Session, name: str, attributes: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        service.create_thing(session, name, attributes=attributes)
    assert caught.value.field == field


def test_update_thing_merges_attributes_and_empty_value_removes(session: Session) -> None:
    service.create_thing(session, "t", attributes={"a": "1", "b": "2"})
    thing = service.update_thing(session, "t", attributes={"b": "", "c": "3"}, merge=True)
    assert thing.attributes == {"a": "1", "c": "3"}
    assert thing.version == 2


def test_update_thing_without_merge_replaces_attributes(session: Session) -> None:
    service.create_thing(session, "t", attributes={"a": "1"})
    assert service.update_thing(session, "t", attributes={"z": "9"}).attributes == {"z": "9"}


def test_update_thing_with_stale_version_is_refused(session: Session) -> None:
    service.create_thing(session, "t")
    service.update_thing(session, "t", thing_type_name="probe", expected_version=1)
    with pytest.raises(VersionConflictError, match="at version 2, not the expected version 1"):
        service.update_thing(session, "t", remove_thing_type=True, expected_version=1)
    assert service.update_thing(session, "t", remove_thing_type=True).thing_type_name is None


def test_update_thing_past_attribute_limit_is_refused(session: Session) -> None:
    service.create_thing(session, "t", attributes={f"k{i}": "v" for i in range(rules.MAX_ATTRIBUTES)})
    with pytest.raises(InvalidRequestError, match="51 attributes"):
        service.update_thing(session, "t", attributes={"one-more": "v"}, merge=True)


def test_list_things_pages_by_name_and_filters(session: Session) -> None:
    for name in ["c", "a", "b", "b2"]:
        service.create_thing(session, name, thing_type_name="probe" if name != "c" else None)
    page = service.list_things(session, limit=2, offset=1)
    assert ([thing.name for thing in page.items], page.total) == (["b", "b2"], 4)
    assert [thing.name for thing in service.list_things(session, name_prefix="b").items] == ["b", "b2"]
    assert service.list_things(session, thing_type_name="probe").total == 3


def test_delete_thing_removes_it_and_its_memberships(session: Session) -> None:
    service.create_thing(session, "t")
    service.create_group(session, "g")
    service.add_thing_to_group(session, "g", "t")
    service.delete_thing(session, "t")
    with pytest.raises(NotFoundError, match="Thing 't' does not exist"):
        service.get_thing(session, "t")
    assert service.list_group_things(session, "g") == []


def test_group_hierarchy_is_listed_up_from_a_thing(session: Session) -> None:
    service.create_group(session, "europe")
    service.create_group(session, "germany", parent_name="europe")
    service.create_group(session, "berlin", parent_name="germany")
    service.create_thing(session, "t")
    service.add_thing_to_group(session, "berlin", "t")
    groups = service.list_thing_groups(session, "t")
    assert [(item.group.name, item.direct) for item in groups] == [
        ("berlin", True),
        ("europe", False),
        ("germany", False),
    ]


def test_recursive_listing_includes_child_groups_members(session: Session) -> None:
    service.create_group(session, "parent")
    service.create_group(session, "child", parent_name="parent")
    for name in ["a", "b"]:
        service.create_thing(session, name)
    service.add_thing_to_group(session, "parent", "a")
    service.add_thing_to_group(session, "child", "b")
    assert [thing.name for thing in service.list_group_things(session, "parent")] == ["a"]
    assert [thing.name for thing in service.list_group_things(session, "parent", recursive=True)] == [
        "a",
        "b",
    ]


def test_hierarchy_deeper_than_seven_is_refused(session: Session) -> None:
    parent = None
    for depth in range(1, rules.MAX_GROUP_DEPTH + 1):
        service.create_group(session, f"level-{depth}", parent_name=parent)
        parent = f"level-{depth}"
    with pytest.raises(LimitExceededError, match="depth 8"):
        service.create_group(session, "too-deep", parent_name=parent)


def test_group_with_children_cannot_be_deleted(session: Session) -> None:
    service.create_group(session, "parent")
    service.create_group(session, "child", parent_name="parent")
    with pytest.raises(CloudConflictError, match="'child'"):
        service.delete_group(session, "parent")
    service.delete_group(session, "child")
    service.delete_group(session, "parent")
    assert service.list_groups(session).total == 0


def test_adding_a_thing_twice_to_a_group_changes_nothing(session: Session) -> None:
    service.create_thing(session, "t")
    service.create_group(session, "g")
    service.add_thing_to_group(session, "g", "t")
    service.add_thing_to_group(session, "g", "t")
    assert [thing.name for thing in service.list_group_things(session, "g")] == ["t"]
    service.remove_thing_from_group(session, "g", "t")
    service.remove_thing_from_group(session, "g", "t")
    assert service.list_group_things(session, "g") == []


def test_a_thing_is_in_one_group_per_hierarchy(session: Session) -> None:
    service.create_group(session, "root")
    service.create_group(session, "left", parent_name="root")
    service.create_group(session, "right", parent_name="root")
    service.create_thing(session, "t")
    service.add_thing_to_group(session, "left", "t")
    with pytest.raises(CloudConflictError, match="already in group 'left'"):
        service.add_thing_to_group(session, "right", "t")


def test_a_thing_is_in_at_most_ten_groups(session: Session) -> None:
    service.create_thing(session, "t")
    for index in range(rules.MAX_GROUPS_PER_THING):
        service.create_group(session, f"g{index}")
        service.add_thing_to_group(session, f"g{index}", "t")
    service.create_group(session, "one-more")
    with pytest.raises(LimitExceededError, match="already in 10 groups"):
        service.add_thing_to_group(session, "one-more", "t")


def test_dynamic_group_members_follow_attributes(session: Session) -> None:
    service.create_group(session, "berlin-3", query_string="attributes.site:berlin AND attributes.floor:3")
    service.create_thing(session, "t1", attributes={"site": "berlin", "floor": "3"})
    service.create_thing(session, "t2", attributes={"site": "berlin", "floor": "4"})
    assert [thing.name for thing in service.list_group_things(session, "berlin-3")] == ["t1"]
    service.update_thing(session, "t2", attributes={"floor": "3"}, merge=True)
    assert [thing.name for thing in service.list_group_things(session, "berlin-3")] == ["t1", "t2"]
    assert [item.group.name for item in service.list_thing_groups(session, "t2")] == ["berlin-3"]


def test_dynamic_group_refuses_manual_members_and_parents(session: Session) -> None:
    service.create_group(session, "dyn", query_string="thingName:*")
    service.create_thing(session, "t")
    with pytest.raises(CloudConflictError, match="dynamic"):
        service.add_thing_to_group(session, "dyn", "t")
    with pytest.raises(InvalidRequestError, match="dynamic group") as caught:
        service.create_group(session, "child", parent_name="dyn")
    assert caught.value.field == "parentGroupName"


def test_group_with_invalid_query_is_refused(session: Session) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        service.create_group(session, "dyn", query_string="site:berlin")
    assert caught.value.field == "queryString"
    assert service.list_groups(session).total == 0


def test_query_of_a_static_group_cannot_be_set(session: Session) -> None:
    service.create_group(session, "static")
    with pytest.raises(InvalidRequestError, match="static"):
        service.update_group(session, "static", query_string="thingName:*")


def test_update_group_changes_description_and_query(session: Session) -> None:
    service.create_group(session, "dyn", query_string="thingName:a*")
    group = service.update_group(session, "dyn", description="all b", query_string="thingName:b*")
    assert (group.description, group.query_string, group.version) == ("all b", "thingName:b*", 2)
    service.create_thing(session, "b1")
    assert [thing.name for thing in service.list_group_things(session, "dyn")] == ["b1"]


def test_membership_of_unknown_names_is_refused(session: Session) -> None:
    service.create_group(session, "g")
    with pytest.raises(NotFoundError, match="Thing 'ghost'"):
        service.add_thing_to_group(session, "g", "ghost")
    with pytest.raises(NotFoundError, match="Thing group 'nowhere'"):
        service.add_thing_to_group(session, "nowhere", "ghost")
