"""Task graphs: signatures, chains, groups, chords and named DAGs, compiled to waiting tasks.

A :class:`Signature` is a call not yet enqueued. ``chain(a, b, c)`` runs one after the other,
each receiving the previous one's return value as its first argument (unless made with
``.si()``: immutable). ``group(a, b, c)`` runs its members in parallel; what follows a group
receives the list of their values, in member order. ``chord(group, callback)`` is
``chain(group, callback)``. A :class:`Graph` names its nodes and lets any node wait for any
others; its cycles are refused (``graphlib``) before anything is stored.

Compiling gives every node a fresh task id, its parents (``depends_on``) and which parents'
values it receives (``pass_results``); the client then stores all tasks in one batch, parents
first. The semantics follow Celery's canvas (``chain``/``group``/``chord``, ``s``/``si``).
"""

from __future__ import annotations

import dataclasses
import graphlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from omniq._options import TaskOptions
from omniq.errors import ConfigError, DependencyCycleError

__all__ = [
    "Canvas",
    "Chain",
    "Chord",
    "Graph",
    "GraphRun",
    "Group",
    "Signature",
    "chain",
    "chord",
    "compile_any",
    "group",
    "signature",
]


@dataclass(frozen=True)
class Signature:
    """One call to enqueue later, as a node of a task graph.

    Attributes:
        func: the function or its import path ``"package.module:function"``.
        args: positional arguments (a chain link's incoming value goes before them).
        kwargs: keyword arguments.
        options: task options (queue, retries, timeout, …; no ``idempotency_key``).
        immutable: when True the node never receives its parents' values (``.si()``).
    """

    func: Callable[..., Any] | str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: TaskOptions = field(default_factory=TaskOptions)
    immutable: bool = False

    def set(self, **options: Any) -> Signature:
        """A copy with other task options (those of ``enqueue``).

        Raises:
            TypeError, ConfigError: as :class:`~omniq._options.TaskOptions`.
        """
        return dataclasses.replace(self, options=dataclasses.replace(self.options, **options))


def signature(
    func: Callable[..., Any] | str, /, *args: Any, immutable: bool = False, **kwargs: Any
) -> Signature:
    """A :class:`Signature` of ``func(*args, **kwargs)`` with default options.

    ``@queue.task`` functions have the shorter ``f.s(*args)`` and ``f.si(*args)``.
    """
    return Signature(func, args, kwargs, TaskOptions(), immutable)


@dataclass(frozen=True)
class Chain:
    """Steps run one after the other (see :func:`chain`)."""

    steps: tuple[Canvas, ...]


@dataclass(frozen=True)
class Group:
    """Members run in parallel (see :func:`group`)."""

    members: tuple[Canvas, ...]


@dataclass(frozen=True)
class Chord:
    """A group, then a callback receiving the list of the group's values (see :func:`chord`)."""

    header: Group
    body: Canvas


Canvas = Signature | Chain | Group | Chord
"""Any node :meth:`omniq.AsyncTaskQueue.enqueue_graph` accepts (besides a :class:`Graph`)."""


def _check_nodes(nodes: Iterable[Any], what: str) -> tuple[Canvas, ...]:
    out = tuple(nodes)
    for node in out:
        if not isinstance(node, Signature | Chain | Group | Chord):
            raise TypeError(
                f"{what} takes signatures (f.s(...), omniq.signature(f, ...)), chains, groups "
                f"or chords, got {type(node).__name__}: {node!r}"
            )
    return out


def chain(*steps: Canvas) -> Chain:
    """Run ``steps`` in order; each receives the previous step's value as first argument (a
    list after a group), except immutable signatures (``.si()``). A step starts only once the
    previous one succeeded; a failure cancels the rest.

    Raises:
        TypeError: a step is not a signature, chain, group or chord.
        ConfigError: no step at all.
    """
    if not steps:
        raise ConfigError("chain() needs at least one step")
    return Chain(_check_nodes(steps, "chain()"))


def group(*members: Canvas | Iterable[Canvas]) -> Group:
    """Run ``members`` in parallel: ``group(a.s(1), a.s(2))`` or ``group(a.s(i) for i in xs)``.

    What follows a group (in a chain or chord) waits for every member and receives the list of
    their values in member order; an empty group gives ``[]`` at once.

    Raises:
        TypeError: a member is not a signature, chain, group or chord.
    """
    only: object = members[0] if len(members) == 1 else None
    if only is not None and not isinstance(only, Signature | Chain | Group | Chord):
        if not isinstance(only, Iterable) or isinstance(only, str | bytes):
            raise TypeError(
                f"group() takes signatures, or one iterable of them, got {type(only).__name__}"
            )
        return Group(_check_nodes(only, "group()"))
    return Group(_check_nodes(members, "group()"))


def chord(header: Group | Iterable[Canvas], body: Canvas) -> Chord:
    """Run the ``header`` group, then ``body`` with the list of the group's values (in member
    order; ``[]`` for an empty group, a one-element list for a one-member group).

    Raises:
        TypeError: ``body`` or a member is not a signature, chain, group or chord.
    """
    head = header if isinstance(header, Group) else group(header)
    [callback] = _check_nodes([body], "chord()")
    return Chord(head, callback)


@dataclass
class _GraphNode:
    signature: Signature
    after: tuple[str, ...]
    pass_results: bool


class Graph:
    """A named DAG: ``g.add("fetch", fetch.s(url))``, ``g.add("parse", parse.s(), after=["fetch"])``.

    Nodes may be added in any order; :meth:`omniq.AsyncTaskQueue.enqueue_graph` checks that
    every ``after`` name exists and that there is no cycle before storing anything.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, _GraphNode] = {}

    def add(
        self,
        name: str,
        node: Signature,
        *,
        after: Sequence[str] = (),
        pass_results: bool = False,
    ) -> Graph:
        """Add a node; returns the graph (calls chain).

        Args:
            name: unique name of the node in this graph.
            node: the call to run.
            after: names of the nodes it waits for (all must succeed).
            pass_results: pass the list of the ``after`` nodes' values, in ``after`` order, as
                its first argument.

        Raises:
            ConfigError: a duplicate or empty name.
            TypeError: ``node`` is not a signature or ``after`` is a single string.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"graph node names must be non-empty strings, got {name!r}")
        if name in self.nodes:
            raise ConfigError(f"graph node {name!r} is added twice")
        if not isinstance(node, Signature):
            raise TypeError(f"graph node {name!r} must be a signature, got {type(node).__name__}")
        if isinstance(after, str) or not isinstance(after, Iterable):
            raise TypeError(
                f"graph node {name!r}: after= takes a list of node names, got {after!r}"
            )
        self.nodes[name] = _GraphNode(node, tuple(dict.fromkeys(after)), pass_results)
        return self

    def order(self) -> list[str]:
        """Node names with every node after those it waits for.

        Raises:
            ConfigError: an ``after`` name that is not a node.
            DependencyCycleError: the graph has a cycle (the error lists it).
        """
        for name, node in self.nodes.items():
            unknown = [a for a in node.after if a not in self.nodes]
            if unknown:
                raise ConfigError(f"graph node {name!r} waits for unknown node(s) {unknown}")
        sorter = graphlib.TopologicalSorter({n: node.after for n, node in self.nodes.items()})
        try:
            return list(sorter.static_order())
        except graphlib.CycleError as exc:
            raise DependencyCycleError(exc.args[1]) from None


class GraphRun(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`omniq.AsyncTaskQueue.enqueue_graph` stored.

    Attributes:
        ids: every task id of the graph, parents before children.
        result_ids: the tasks whose values are the graph's result: the last step of a chain,
            a chord's callback, a group's members (in member order), a DAG's sinks.
        is_group: the result is a list (a group), not one value.
        names: for a :class:`Graph`, the task id of each node name.
    """

    ids: tuple[str, ...]
    result_ids: tuple[str, ...]
    is_group: bool = False
    names: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def id(self) -> str:
        """The id of the one task whose value is the graph's result.

        Raises:
            ValueError: the graph is a group (use ``result_ids``) or has several sinks.
        """
        if self.is_group or len(self.result_ids) != 1:
            raise ValueError(
                "this graph's result is several tasks; use result_ids (or get_result(run))"
            )
        return self.result_ids[0]


@dataclass
class PlannedTask:
    """One node as compiled: the call plus its graph fields (``depends_on``, ``pass_results``)."""

    id: str
    signature: Signature
    depends_on: tuple[str, ...]
    pass_results: tuple[str, ...] | None
    pass_single: bool


@dataclass
class GraphPlan:
    """A compiled graph: its tasks, parents first, and what its result is."""

    tasks: list[PlannedTask]
    result_ids: tuple[str, ...]
    is_group: bool
    names: dict[str, str]

    def run(self) -> GraphRun:
        """What ``enqueue_graph`` returns once this plan is stored."""
        return GraphRun(
            ids=tuple(t.id for t in self.tasks),
            result_ids=self.result_ids,
            is_group=self.is_group,
            names=self.names,
        )


class _Compiler:
    def __init__(self, new_id: Callable[[], str]) -> None:
        self.new_id = new_id
        self.tasks: list[PlannedTask] = []

    def place(
        self, node: Canvas, after: tuple[str, ...], feed: tuple[tuple[str, ...], bool] | None
    ) -> tuple[tuple[str, ...], bool]:
        """Plan ``node`` after ``after`` receiving ``feed`` (ids, single); return its exits
        and whether what follows receives them as a list (``True``) or one value."""
        if isinstance(node, Signature):
            task_id = self.new_id()
            passed, single = (None, False) if node.immutable or feed is None else feed
            self.tasks.append(PlannedTask(task_id, node, after, passed, single))
            return (task_id,), False
        if isinstance(node, Chord):
            node = Chain((node.header, node.body))
        if isinstance(node, Chain):
            exits: tuple[str, ...] = ()
            as_list = False
            for step in node.steps:
                exits, as_list = self.place(step, after, feed)
                feed = (exits, not as_list)  # the next step receives these values
                after = exits or after  # an empty group orders nothing: keep waiting for `after`
            return exits, as_list
        exits_all: tuple[str, ...] = ()
        for member in node.members:
            exits_all += self.place(member, after, feed)[0]
        return exits_all, True


def compile_canvas(node: Canvas, new_id: Callable[[], str], after: Sequence[str] = ()) -> GraphPlan:
    """Plan a chain/group/chord/signature, every entry waiting for ``after`` (existing ids)."""
    compiler = _Compiler(new_id)
    exits, as_list = compiler.place(node, tuple(after), None)
    if isinstance(node, Group):
        return GraphPlan(compiler.tasks, exits, True, {})
    return GraphPlan(compiler.tasks, exits, as_list, {})


def compile_graph(graph: Graph, new_id: Callable[[], str], after: Sequence[str] = ()) -> GraphPlan:
    """Plan a :class:`Graph` (topological order; its sinks are the result).

    Raises:
        ConfigError, DependencyCycleError: as :meth:`Graph.order`.
    """
    names: dict[str, str] = {}
    tasks = []
    waited_for: set[str] = set()
    for name in graph.order():
        node = graph.nodes[name]
        names[name] = new_id()
        parents = tuple(names[a] for a in node.after)
        waited_for.update(node.after)
        tasks.append(
            PlannedTask(
                names[name],
                node.signature,
                parents or tuple(after),
                parents if node.pass_results and not node.signature.immutable else None,
                False,
            )
        )
    sinks = tuple(names[n] for n in graph.order() if n not in waited_for)
    return GraphPlan(tasks, sinks, len(sinks) != 1, names)


def compile_any(
    graph: Canvas | Graph, new_id: Callable[[], str], after: Sequence[str] = ()
) -> GraphPlan:
    """Plan whatever ``enqueue_graph`` accepts.

    Raises:
        TypeError: ``graph`` is not a chain, group, chord, signature or :class:`Graph`.
        ConfigError, DependencyCycleError: as :func:`compile_graph`.
    """
    if isinstance(graph, Graph):
        return compile_graph(graph, new_id, after)
    if isinstance(graph, Signature | Chain | Group | Chord):
        return compile_canvas(graph, new_id, after)
    raise TypeError(
        "enqueue_graph() takes a chain, group, chord, signature or Graph, "
        f"got {type(graph).__name__}"
    )
