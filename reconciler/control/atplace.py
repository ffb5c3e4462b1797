"""Which agent instances a place (a node's name, or None: the controller's host) runs, by the
leader's placement (`plan.placement.where`), and where the others run. Pure: reads nothing,
starts nothing (`fleet` acts on it).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..plan.placement import Placed, where
from ..spec.desired import Desired


def desired_instances(
    desired: Desired,
    place: str | None = None,
    placed: Placed | None = None,
    records: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, bool]:
    """instance name → should run (False: suspended, or placed nowhere) for the agents at
    `place`: a node's name (`tt node run`), or None for the controller's host, by the leader's
    `placed` (`plan.placement.where`). One placed nowhere belongs to the place its record names
    (which stops it). Agents placed elsewhere are not in it: this place neither starts nor
    stops them."""
    key, out = place or "", {}
    suspended = {n for a in desired.agents if a.suspended for n in a.instances()}
    for name, at in where(desired, placed).items():
        if at == key:
            out[name] = name not in suspended
        elif at is None and (records or {}).get(name, {}).get("node", "") == key:
            out[name] = False
    return out


def placed_elsewhere(
    desired: Desired,
    place: str | None = None,
    placed: Placed | None = None,
    records: Mapping[str, Mapping[str, str]] | None = None,
    here: Mapping[str, bool] | None = None,
) -> dict[str, str]:
    """instance name → the node it is placed on ('' the controller's), for the instances not at
    `place`; one placed nowhere → the node its record names. `here`: `desired_instances` of the
    same arguments, when the caller has it already."""
    if here is None:
        here = desired_instances(desired, place, placed, records)
    return {
        name: at if at is not None else (records or {}).get(name, {}).get("node", "")
        for name, at in where(desired, placed).items()
        if name not in here
    }
