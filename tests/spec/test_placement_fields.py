"""An agent's placement fields in town.toml: `node_labels` (a table of strings), `placement`
(spread | pack), `[town] local_agents`; `node` with either is refused at its line, and bad
labels are reported by field; none of them restarts an agent (not in the spec hash)."""

from __future__ import annotations

from reconciler.plan.state import agent_spec_from_json, agent_spec_json
from reconciler.spec.desired import AgentSpec, Placement
from tests.spec.test_loader import TOWN, load_texts, only_problem, problems_of

TASKS = '[[tasks]]\nid = "t"\ndescription = "x"\nagent = "developer"\n'


def test_labels_placement_and_local_agents_are_read() -> None:
    town = TOWN.replace('name = "demo"', 'name = "demo"\nlocal_agents = false') + (
        'node_labels = {zone = "eu", gpu = "1"}\nplacement = "pack"\n'
    )
    desired = load_texts(town, TASKS)
    worker = desired.agent("worker")
    assert worker is not None
    assert (worker.node_labels, worker.placement) == (
        (("gpu", "1"), ("zone", "eu")),
        Placement.PACK,
    )
    assert desired.town.local_agents is False
    plain = load_texts(TOWN, TASKS)
    assert plain.town.local_agents is True
    developer = plain.agent("developer")
    assert developer is not None
    assert (developer.node_labels, developer.placement) == ((), Placement.SPREAD)
    # Stored and read back (the apply's record of the spec); no part of the spec hash.
    assert agent_spec_from_json(agent_spec_json(worker)) == worker
    assert worker.spec_hash() == AgentSpec("worker", worker.model, replicas=3).spec_hash()


def test_node_with_node_labels_or_placement_is_refused_at_its_line() -> None:
    town = TOWN + 'node = "n1"\nnode_labels = {gpu = "1"}\n'
    problem = only_problem(town=town)
    assert problem.path == "$.agents.worker.node_labels"
    assert problem.line == town.count("\n")
    assert "node and node_labels together" in problem.render()
    town = TOWN + 'node = "n1"\nplacement = "spread"\n'
    problem = only_problem(town=town)
    assert (problem.path, problem.line) == ("$.agents.worker.placement", town.count("\n"))
    assert "placement with node" in problem.message


def test_bad_labels_and_placements_are_reported_by_field() -> None:
    town = TOWN + 'node_labels = {Gpu = "1", zone = "a,b", n = 1}\nplacement = "fill"\n'
    found = {p.path: p for p in problems_of(town=town)}
    assert set(found) == {
        "$.agents.worker.node_labels.Gpu",
        "$.agents.worker.node_labels.zone",
        "$.agents.worker.node_labels.n",
        "$.agents.worker.placement",
    }
    assert all(p.file == "town.toml" and p.line for p in found.values())
    assert '"fill"' in found["$.agents.worker.placement"].message
    local = TOWN.replace('name = "demo"', 'name = "demo"\nlocal_agents = "no"')
    assert only_problem(town=local).path == "$.town.local_agents"


def test_a_node_name_off_the_name_rule_is_refused_at_its_line_in_its_words() -> None:
    town = TOWN + 'node = "GPU_Box"\n'
    problem = only_problem(town=town)
    assert (problem.file, problem.path, problem.line) == (
        "town.toml",
        "$.agents.worker.node",
        town.count("\n"),
    )
    assert 'invalid node name "GPU_Box"' in problem.message
    assert "use lowercase letters, digits" in problem.message


def test_placement_on_an_agent_of_the_controllers_host_is_refused() -> None:
    town = TOWN + 'placement = "pack"\n'
    problem = only_problem(town=town)
    assert (problem.path, problem.line) == ("$.agents.worker.placement", town.count("\n"))
    assert "placement on an agent placed on no node" in problem.message
    # On nodes (node_labels, or [town] local_agents = false) it is read.
    labelled = load_texts(TOWN + 'node_labels = {gpu = "1"}\nplacement = "pack"\n', TASKS)
    assert labelled.agent("worker").placement is Placement.PACK  # type: ignore[union-attr]
    remote = TOWN.replace('name = "demo"', 'name = "demo"\nlocal_agents = false')
    nodes = load_texts(remote + 'placement = "pack"\n', TASKS)
    assert nodes.agent("worker").placement is Placement.PACK  # type: ignore[union-attr]
