"""Plans: an operation compiled once into the fields to run on each object type, in order.

Fields are grouped by response key with graphql-core's own `collect_fields` and
`collect_subfields` (fragments merged, aliases kept, selection order as graphql-core makes it).
Each field gets one way to be resolved for all parents of a level:

- TYPENAME  `__typename`: already in the selection's template, so it costs nothing per object;
- ATTR      a strawberry field without resolver, or a `read_field`: read from the parent directly;
- BATCH     a field declared with `@batched` (`bff.graph.batch`) or `batch_field`
            (`bff.graph.fields`): its form, called once per level; its checks run per parent,
            as strawberry would run them;
- RESOLVE   anything else (root fields, mutations): per parent, the resolver called directly
            when strawberry's wrapper would only rename scalars and run `Requires` checks
            (`direct`), else the field's own graphql-core `resolve` (that wrapper).

Arguments written without variables are coerced once here; the others per execution. An
operation whose `@skip`/`@include` read variables (its switches, `support.scan`) gets one root
selection per combination of their values, all planned here; an execution picks its own.

A plan made `deferring` (for a client that reads parts) splits each selection by `@defer`:
`fields` and `template` hold what the selection's own part carries, and each fragment deferred
at that level is a `Selection` of its own in `deferred` (its `usage` graphql-core's
`DeferUsage`, the `label` the client gave). A field asked both inside and outside a deferred
fragment comes with the part that does not wait.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    ValueNode,
    VariableNode,
    get_named_type,
)
from graphql.execution.collect_fields import (
    DeferUsage,
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values

from bff.graph.batch import batch_of
from bff.graph.fields import BATCH as BATCH_FIELD
from bff.graph.fields import READ as READ_FIELD
from bff.graph.fields import BatchResolver, Check
from bff.graph.permissions import Requires
from bff.graphql.fallbacks import Fallback
from bff.graphql.fastpath.direct import DEFINITION, DirectCall, direct_call
from bff.graphql.fastpath.rows import Rows, row_filler
from bff.graphql.fastpath.shapes import OBJECT, Shape, Unsupported, shape_of
from bff.graphql.fastpath.support import choose_operation, scan

TYPENAME, ATTR, BATCH, RESOLVE = range(4)
NO_VARIABLES = VariableValues({}, {})


@dataclass(slots=True, eq=False)
class FieldPlan:
    key: str
    name: str
    kind: int
    parent_type: GraphQLObjectType
    field_def: GraphQLField | None
    nodes: list[FieldNode]
    rank: int = 0  # position in its selection
    shape: Shape | None = None
    read: Callable[[Any], Any] | None = None  # ATTR
    batch: Callable[..., Any] | None = None  # BATCH
    batch_is_async: bool = False
    checks: tuple[Check, ...] = ()
    python_names: dict[str, str] = field(default_factory=dict)
    args: dict[str, Any] | None = None  # coerced once, or `None` when variables decide
    call: DirectCall | None = None  # RESOLVE: the resolver called without strawberry's wrapper
    null_message: str = ""


@dataclass(slots=True, eq=False)
class Selection:
    """The fields one selection set asks of an object type (`__typename` aside), and its
    result to copy: every key in order, `__typename` filled in, the rest `None`."""

    type: GraphQLObjectType
    fields: list[FieldPlan]
    template: dict[str, str | None]
    deferred: list[Selection] = field(default_factory=list)  # fragments deferred here
    usage: DeferUsage | None = None  # for a deferred fragment: its `@defer`
    rows: Rows | None = None  # its plain attribute leaves, filled in one loop (`rows`)
    rest: list[FieldPlan] = field(default_factory=list)  # `fields` but those `rows` fills

    def __post_init__(self) -> None:
        self.rows = row_filler(self.fields)
        filled = () if self.rows is None else self.rows.fields
        self.rest = [f for f in self.fields if f not in filled]


@dataclass(slots=True, eq=False)
class OperationPlan:
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    switches: tuple[str, ...]  # variables deciding @skip/@include
    roots: dict[tuple[bool, ...], Selection]  # by the switches' values, in order
    serial: bool
    deferring: bool = False  # planned to answer in parts: `Selection.deferred` is filled in

    @property
    def root(self) -> Selection:
        """The root selection of an operation without switches (all switches on otherwise)."""
        return self.roots[(True,) * len(self.switches)]

    def root_for(self, variables: Mapping[str, Any]) -> Selection | None:
        """The root selection these coerced variables select; `None` when a switch is not a
        boolean (graphql-core reports that)."""
        if not self.switches:
            return self.roots[()]
        values: Any = tuple([variables.get(name) for name in self.switches])
        return self.roots.get(values)


def plan_operation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    *,
    deferring: bool = False,
) -> OperationPlan | Fallback:
    """The plan of the operation, or why graphql-core must run it; `deferring`: with its
    `@defer`s honoured (`Selection.deferred`)."""
    operation = choose_operation(document, operation_name)
    if operation is None:
        return Fallback("no single operation to run")
    definitions = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    found = scan(operation, definitions)
    if found.reason is not None:
        return Fallback(found.reason)
    deferring = deferring and found.defers
    if deferring and found.defer_variables:
        return Fallback("@defer(if:) from a variable")
    if deferring and operation.operation == OperationType.MUTATION:
        return Fallback("@defer in a mutation")
    root_type = schema.get_root_type(operation.operation)
    if root_type is None:
        return Fallback(f"no {operation.operation.value} type")
    fragments = {k: FragmentDetails(v) for k, v in definitions.items()}
    switches = tuple(found.switches)
    roots: dict[tuple[bool, ...], Selection] = {}
    try:
        for values in itertools.product((False, True), repeat=len(switches)):
            variables = VariableValues({}, dict(zip(switches, values, strict=True)))
            planner = Planner(schema, operation, fragments, variables, deferring)
            fields = collect_fields(schema, fragments, variables, root_type, operation)
            roots[values] = planner.selection(root_type, fields.grouped_field_set)
    except Unsupported as error:
        return Fallback(str(error))
    except RecursionError:
        return Fallback("nested too deeply to plan")
    serial = operation.operation == OperationType.MUTATION
    return OperationPlan(operation, definitions, switches, roots, serial, deferring)


class Planner:
    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDetails],
        switches: VariableValues = NO_VARIABLES,
        deferring: bool = False,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.fragments = fragments
        self.switches = switches  # the values of the switches this plan is for
        self.deferring = deferring

    def selection(
        self,
        type_: GraphQLObjectType,
        grouped: dict[str, list[FieldDetails]],
        usage: DeferUsage | None = None,
    ) -> Selection:
        """The selection of `grouped` on `type_`, within the deferred fragment `usage` (or
        none); when deferring, fragments deferred below `usage` become `deferred`."""
        if not self.deferring:
            return self.fields_of(type_, grouped, usage)
        own: dict[str, list[FieldDetails]] = {}
        later: dict[DeferUsage, dict[str, list[FieldDetails]]] = {}
        for key, details in grouped.items():
            usages = {d.defer_usage for d in details}
            if usage in usages:
                own[key] = details
            elif len(usages) == 1:
                (deferred,) = usages
                assert deferred is not None
                later.setdefault(deferred, {})[key] = details
            else:
                raise Unsupported(f"{type_.name}.{key} in several deferred fragments")
        selection = self.fields_of(type_, own, usage)
        for deferred, fields in sorted(later.items(), key=lambda item: _depth(item[0])):
            inner = self.fields_of(type_, fields, deferred)
            inner.usage = deferred
            selection.deferred.append(inner)
        return selection

    def fields_of(
        self,
        type_: GraphQLObjectType,
        grouped: dict[str, list[FieldDetails]],
        usage: DeferUsage | None,
    ) -> Selection:
        fields = [self.field(type_, key, details, usage) for key, details in grouped.items()]
        for rank, planned in enumerate(fields):
            planned.rank = rank
        template = {f.key: type_.name if f.kind == TYPENAME else None for f in fields}
        return Selection(type_, [f for f in fields if f.kind != TYPENAME], template)

    def field(
        self,
        parent: GraphQLObjectType,
        key: str,
        details: list[FieldDetails],
        usage: DeferUsage | None = None,
    ) -> FieldPlan:
        nodes = [d.node for d in details]
        name = nodes[0].name.value
        if name == "__typename":
            return FieldPlan(key, name, TYPENAME, parent, None, nodes)
        field_def = parent.fields.get(name)
        if field_def is None:
            raise Unsupported(f"unknown field {parent.name}.{name}")
        plan = FieldPlan(key, name, RESOLVE, parent, field_def, nodes)
        plan.null_message = f"Cannot return null for non-nullable field {parent.name}.{name}."
        plan.shape = shape = shape_of(field_def.type)
        self.arguments(plan, field_def, nodes[0])
        self.resolution(plan, field_def)
        if plan.kind == RESOLVE:
            plan.call = direct_call(self.schema, field_def)
        while shape.item is not None:
            shape = shape.item
        if shape.kind == OBJECT:
            assert shape.object_type is not None
            object_type = shape.object_type
            sub = collect_subfields(
                self.schema, self.fragments, self.switches, self.operation, object_type, details
            )
            shape.selection = self.selection(object_type, sub.grouped_field_set, usage)
        return plan

    @staticmethod
    def arguments(plan: FieldPlan, field_def: GraphQLField, node: FieldNode) -> None:
        if not (field_def.args or node.arguments):
            plan.args = {}
        elif not any(has_variables(arg.value) for arg in node.arguments or ()):
            try:
                plan.args = get_argument_values(field_def, node, NO_VARIABLES)
            except Exception:  # left to each execution, which reports it as graphql-core does
                plan.args = None

    @staticmethod
    def resolution(plan: FieldPlan, field_def: GraphQLField) -> None:
        extensions = field_def.extensions
        declared: BatchResolver | None = extensions.get(BATCH_FIELD)
        if declared is not None:  # a graphql-core field of a graph (`bff.graph.fields`)
            plan.kind, plan.batch = BATCH, declared.form
            plan.python_names = {name: name for name in field_def.args}
            plan.python_names.update(declared.python_names or {})
            plan.batch_is_async = inspect.iscoroutinefunction(declared.form)
            plan.checks = declared.checks
            return
        read = extensions.get(READ_FIELD)
        if read is not None:
            plan.kind, plan.read = ATTR, read
            return
        definition = extensions.get(DEFINITION)
        if definition is None:
            return
        checks = list(definition.extensions)
        fn = batch_of(definition.metadata)
        if fn is not None:
            names = python_names(field_def)
            if names is not None and all(isinstance(e, Requires) for e in checks):
                plan.kind, plan.batch, plan.python_names = BATCH, fn, names
                plan.batch_is_async = inspect.iscoroutinefunction(fn)
                plan.checks = tuple(reversed(checks))  # the outermost one checks first
        elif definition.is_basic_field and definition.default_resolver is getattr:
            plan.kind, plan.read = ATTR, attrgetter(definition.python_name)


def _depth(usage: DeferUsage | None) -> int:
    """How many `@defer`s enclose this one (outer fragments are started first)."""
    depth = 0
    while usage is not None:
        usage, depth = usage.parent_defer_usage, depth + 1
    return depth


def python_names(field_def: GraphQLField) -> dict[str, str] | None:
    """GraphQL argument name -> Python name, when every argument is a scalar (or list of)."""
    names = {}
    for name, arg in field_def.args.items():
        definition = arg.extensions.get(DEFINITION)
        if definition is None or not isinstance(get_named_type(arg.type), GraphQLScalarType):
            return None
        names[name] = definition.python_name
    return names


def has_variables(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(has_variables(v) for v in value.values)
    if isinstance(value, ObjectValueNode):
        return any(has_variables(f.value) for f in value.fields)
    return False
