"""The one interface every part of the local cluster has, and the base most of them use.

A component is a small object with a name, the names of the components it needs running first,
the cluster features that select it (``features``, and ``unless`` for those that rule it out), and
four methods:

- ``missing()``   what its build cache (or the machine) lacks; empty when it can run
- ``prepare(ctx)`` work that needs only ``prepare_needs`` (e.g. pushing its images to the
                  registry), done while what ``needs`` names is still starting
- ``start(ctx)``  start its processes or apply its objects
- ``ready(ctx)``  return once it serves (a readiness signal: a health endpoint, a watch); where
                  start already waits, nothing
- ``stop(ctx)``   stop what start started and undo what it changed on the machine
- ``stops_early`` True for controllers that would recreate pods while the node drains: `down`
                  stops these first, then every other component in reverse start order

It touches only its own file's concerns, through the narrow ``Context`` (context.py). The order
and the selection live in one list in cluster.py; nothing here imports it.
"""

from __future__ import annotations

from typing import ClassVar

from .context import Context


class Component:
    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    # What prepare() needs ready; prepare runs as soon as these are, start once `needs` are too.
    prepare_needs: ClassVar[tuple[str, ...]] = ()
    # The cluster runs this component only when it has all of these features
    # ("kubelet" or "kwok" node side, "tekton", "loop").
    features: ClassVar[frozenset[str]] = frozenset()
    # ... and not when it has any of these (another component of the same name stands in).
    unless: ClassVar[frozenset[str]] = frozenset()
    stops_early: ClassVar[bool] = False

    def missing(self) -> list[str]:
        return []

    def prepare(self, ctx: Context) -> None:
        """Work that needs only ``prepare_needs``; nothing by default."""

    def start(self, ctx: Context) -> None:
        raise NotImplementedError

    def ready(self, ctx: Context) -> None:
        """Wait until the component serves; start already waited unless a component says otherwise."""

    def stop(self, ctx: Context) -> None:
        """Default: stop the process named like the component, if it spawned one."""
        ctx.stop(self.name)

    def __repr__(self) -> str:
        return f"<component {self.name}>"
