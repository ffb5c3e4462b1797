"""The leader's placement of agent instances on nodes, on plain values (`plan/placement.py`):
spread and pack within slots, labels, stability, a dead node's agents moved, pins, and which
agents need a node at all (`[town] local_agents`)."""

from __future__ import annotations

from reconciler.plan.placement import (
    NodeInfo,
    Placed,
    Want,
    node_infos,
    place,
    wants,
    where,
)
from reconciler.spec.desired import AgentSpec, Desired, Placement, TownSettings


def pool(
    agent: str,
    replicas: int,
    node: str | None = None,
    labels: tuple[tuple[str, str], ...] = (),
    placement: Placement = Placement.SPREAD,
) -> list[Want]:
    names = AgentSpec(agent, "sim", replicas=replicas).instances()
    return [Want(n, agent, i, node, labels, placement) for i, n in enumerate(names, 1)]


def ready(name: str, slots: int = 0, state: str = "ready", **labels: str) -> NodeInfo:
    return NodeInfo(name, state, slots, labels)


def nodes(*infos: NodeInfo) -> dict[str, NodeInfo]:
    return {n.name: n for n in infos}


def test_spread_puts_a_pools_replicas_on_every_node_in_turn() -> None:
    got = place(pool("w", 4), nodes(ready("n2"), ready("n1")), {})
    assert got == Placed({"w": "n1", "w-2": "n2", "w-3": "n1", "w-4": "n2"}, {})
    # Another pool spreads too, by its own count first, then by the nodes' load.
    two = place([*pool("w", 3), *pool("x", 2)], nodes(ready("n1"), ready("n2")), {})
    assert two.nodes == {"w": "n1", "w-2": "n2", "w-3": "n1", "x": "n2", "x-2": "n1"}


def test_pack_fills_a_node_up_to_its_slots_before_the_next() -> None:
    packed = pool("w", 5, placement=Placement.PACK)
    got = place(packed, nodes(ready("n1", slots=2), ready("n2", slots=2), ready("n3")), {})
    assert got.nodes == {"w": "n1", "w-2": "n1", "w-3": "n2", "w-4": "n2", "w-5": "n3"}
    # Unlimited slots: every replica on the first node by name.
    assert set(place(packed, nodes(ready("n1"), ready("n2")), {}).nodes.values()) == {"n1"}


def test_slots_are_enforced_and_what_fits_nowhere_says_why() -> None:
    got = place(pool("w", 3), nodes(ready("n1", slots=1), ready("n2", slots=1)), {})
    assert got.nodes == {"w": "n1", "w-2": "n2"}
    assert got.unschedulable == {"w-3": "no ready node and a free slot"}


def test_labels_select_the_nodes_that_have_them_all() -> None:
    gpu = pool("g", 2, labels=(("gpu", "1"),))
    infos = nodes(ready("a"), ready("b", gpu="1"), ready("c", gpu="0"), ready("d", gpu="1", x="y"))
    assert place(gpu, infos, {}).nodes == {"g": "b", "g-2": "d"}
    both = pool("h", 1, labels=(("gpu", "1"), ("x", "y")))
    assert place(both, infos, {}).nodes == {"h": "d"}
    none = place(pool("t", 1, labels=(("tpu", "1"),)), infos, {})
    assert none == Placed({}, {"t": "no ready node with node_labels tpu=1 and a free slot"})
    full = place(gpu, nodes(ready("b", slots=1, gpu="1")), {})
    assert full.unschedulable == {"g-2": "no ready node with node_labels gpu=1 and a free slot"}


def test_stable_a_joining_node_moves_nothing_and_a_node_leaving_moves_only_its_agents() -> None:
    first = place(pool("w", 3), nodes(ready("n1")), {})
    assert set(first.nodes.values()) == {"n1"}
    joined = place(pool("w", 3), nodes(ready("n1"), ready("n2")), first.nodes)
    assert joined.nodes == first.nodes
    # A fourth replica goes where spread puts it, the others stay.
    grown = place(pool("w", 4), nodes(ready("n1"), ready("n2")), joined.nodes)
    assert grown.nodes == {**first.nodes, "w-4": "n2"}
    # n1 dies: its replicas move to the ready node; the one on n2 stays.
    for state in ("dead", "draining", "stopped"):
        moved = place(pool("w", 4), nodes(ready("n1", state=state), ready("n2")), grown.nodes)
        assert moved == Placed(dict.fromkeys(grown.nodes, "n2"), {})
    # No ready node left: unschedulable, with the reason.
    gone = place(pool("w", 1), nodes(ready("n1", state="dead")), {"w": "n1"})
    assert gone == Placed({}, {"w": "no ready node and a free slot"})


def test_a_kept_placement_holds_its_slot_and_a_lost_label_moves_the_agent() -> None:
    gpu = pool("g", 1, labels=(("gpu", "1"),))
    # Its node lost the label (restarted without it): the agent moves to one that has it.
    infos = nodes(ready("n1"), ready("n2", gpu="1"))
    assert place(gpu, infos, {"g": "n1"}).nodes == {"g": "n2"}
    # The node a newcomer would pick is taken by the one already there (stability first).
    one_slot = nodes(ready("n1", slots=1), ready("n2", slots=1))
    got = place([*pool("a", 1), *pool("b", 1)], one_slot, {"b": "n1"})
    assert got.nodes == {"b": "n1", "a": "n2"}


def test_a_pin_waits_for_its_node_and_is_never_moved_but_respects_its_slots() -> None:
    pinned = pool("p", 2, node="n1")
    for state in ("ready", "dead", "draining"):
        got = place(pinned, nodes(ready("n1", state=state), ready("n2")), {})
        assert got.nodes == {"p": "n1", "p-2": "n1"}
    assert place(pinned, {}, {}).nodes == {"p": "n1", "p-2": "n1"}  # never registered yet
    full = place(pinned, nodes(ready("n1", slots=1)), {})
    assert full == Placed({"p": "n1"}, {"p-2": "node n1 has no free slot (1 slots)"})
    # Pins take their slots before the agents that may go anywhere.
    mixed = place([*pool("a", 1), *pinned], nodes(ready("n1", slots=2), ready("n2")), {})
    assert mixed.nodes == {"p": "n1", "p-2": "n1", "a": "n2"}


def test_ties_are_broken_by_name_so_the_same_inputs_place_the_same() -> None:
    infos = nodes(ready("b"), ready("a"), ready("c"))
    runs = {tuple(sorted(place(pool("w", 5), infos, {}).nodes.items())) for _ in range(5)}
    assert runs == {(("w", "a"), ("w-2", "b"), ("w-3", "c"), ("w-4", "a"), ("w-5", "b"))}


def town(*agents: AgentSpec, local_agents: bool = True) -> Desired:
    return Desired(TownSettings("t", local_agents=local_agents), agents=agents)


def test_which_agents_need_a_node_and_where_each_runs() -> None:
    home = AgentSpec("home", "sim")
    pin = AgentSpec("pin", "sim", node="n1")
    gpu = AgentSpec("gpu", "sim", replicas=2, node_labels=(("gpu", "1"),))
    off = AgentSpec("off", "sim", node_labels=(("gpu", "1"),), suspended=True)
    desired = town(home, pin, gpu, off)
    assert [w.instance for w in wants(desired)] == ["pin", "gpu", "gpu-2"]
    decided = Placed({"pin": "n1", "gpu": "n2"}, {"gpu-2": "no ready node"})
    assert where(desired, decided) == {
        "home": "",
        "pin": "n1",
        "gpu": "n2",
        "gpu-2": None,
        "off": None,
    }
    # Before any leader placed it, a pin waits on its node; a selector is placed nowhere.
    assert where(desired) == {"home": "", "pin": "n1", "gpu": None, "gpu-2": None, "off": None}
    # local_agents = false: the plain agent is placed on a node too, never run at home.
    remote = town(home, pin, local_agents=False)
    assert [w.instance for w in wants(remote)] == ["home", "pin"]
    assert where(remote, Placed({"home": "n2"}, {}))["home"] == "n2"
    assert where(remote)["home"] is None
    got = place(wants(remote), nodes(ready("n1", slots=1), ready("n2")), {})
    assert got.nodes == {"pin": "n1", "home": "n2"}


def test_node_records_read_as_state_slots_and_labels() -> None:
    records = {
        "a": {"lease": "1", "state": "ready", "slots": "4", "labels": "gpu=1,zone=eu"},
        "b": {"lease": "", "state": "ready", "slots": "0", "labels": ""},
    }
    assert node_infos(records) == {
        "a": NodeInfo("a", "ready", 4, {"gpu": "1", "zone": "eu"}),
        "b": NodeInfo("b", "dead", 0, {}),
    }


def test_a_pin_takes_the_slot_of_a_movable_replica_which_moves() -> None:
    wanted = [*pool("w", 1), *pool("pin", 1, node="n1")]
    both = nodes(ready("n1", slots=1), ready("n2", slots=1))
    got = place(wanted, both, {"w": "n1"})
    assert got == Placed({"pin": "n1", "w": "n2"}, {})
    # Nowhere to move: the replica waits, not the pin.
    alone = place(wanted, nodes(ready("n1", slots=1)), {"w": "n1"})
    assert alone == Placed({"pin": "n1"}, {"w": "no ready node and a free slot"})
    # Among pins, the one already on its node keeps it.
    pins = [*pool("p", 1, node="n1"), *pool("q", 1, node="n1")]
    kept = place(pins, nodes(ready("n1", slots=1)), {"q": "n1"})
    assert kept == Placed({"q": "n1"}, {"p": "node n1 has no free slot (1 slots)"})


def test_an_instance_that_still_beats_stays_on_its_late_node_until_its_lease_is_gone() -> None:
    late = nodes(ready("n1", state="dead"), ready("n2"))
    current = {"w": "n1", "w-2": "n1"}
    got = place(pool("w", 2), late, current, beating=["w"])
    assert got == Placed({"w": "n1", "w-2": "n2"}, {})  # w-2's lease is gone: it moves
    draining = nodes(ready("n1", state="draining"), ready("n2"))
    assert place(pool("w", 1), draining, {"w": "n1"}, beating=["w"]).nodes == {"w": "n1"}
    assert place(pool("w", 1), draining, {"w": "n1"}).nodes == {"w": "n2"}
    # Never placed there anew: a beating instance of another node is not put on a dead one.
    assert place(pool("w", 1), late, {}, beating=["w"]).nodes == {"w": "n2"}
