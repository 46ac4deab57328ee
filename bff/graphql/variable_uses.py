"""graphql-core's three rules on variable uses, read from the one validation pass.

`NoUndefinedVariablesRule`, `NoUnusedVariablesRule` and `VariablesInAllowedPositionRule` each
ask the validation context for an operation's variable uses, fragments included; the context
finds them by walking every reachable fragment again with a fresh `TypeInfo`, keyed by nodes
that hash their whole subtree. On a document of hundreds of fragments that second walk costs
more than the rest of validation. `VariableUsesRule` records each use (its node, and the
expected type, parent input type and default value that `TypeInfo` gives at that point of the
main pass: what the fresh walk of the same definition gives) and the spreads of each
definition, and checks every operation when the document is left, with graphql-core's own
messages and conditions: same verdicts, errors reported after the other rules' ones.

The gateway parses without fragment arguments, so no use belongs to a fragment's variable.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    TypeInfo,
    VariableDefinitionNode,
    VariableNode,
    is_input_object_type,
    is_nullable_type,
    parse,
    type_from_ast,
)
from graphql.validation import ValidationContext, ValidationRule
from graphql.validation.rules.variables_in_allowed_position import allowed_variable_usage
from graphql.validation.validation_context import VariableUsage

Definition = OperationDefinitionNode | FragmentDefinitionNode


class VariableUsesRule(ValidationRule):
    """All variables defined, all used, each in a position its type allows."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.uses: dict[str, list[VariableUsage]] = {}  # fragment name: its uses
        self.spreads: dict[str, list[str]] = {}  # fragment name: the names it spreads
        self.operations: list[tuple[OperationDefinitionNode, list[VariableUsage], list[str]]]
        self.operations = []
        self.current_uses: list[VariableUsage] = []
        self.current_spreads: list[str] = []

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        self.current_uses, self.current_spreads = [], []
        self.operations.append((node, self.current_uses, self.current_spreads))

    def enter_fragment_definition(self, node: FragmentDefinitionNode, *_args: Any) -> None:
        self.current_uses, self.current_spreads = [], []
        self.uses.setdefault(node.name.value, self.current_uses)
        self.spreads.setdefault(node.name.value, self.current_spreads)

    def enter_variable_definition(self, *_args: Any) -> Any:
        return self.SKIP  # a definition is not a use

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_args: Any) -> None:
        self.current_spreads.append(node.name.value)

    def enter_variable(self, node: VariableNode, *_args: Any) -> None:
        type_info = self.context._type_info  # the context exposes no default value
        use = VariableUsage(
            node,
            type_info.get_input_type(),
            type_info.get_parent_input_type(),
            type_info.get_default_value(),
            None,
        )
        self.current_uses.append(use)

    def leave_document(self, *_args: Any) -> None:
        for operation, uses, spreads in self.operations:
            every = list(uses)
            for name in self.reachable(spreads):
                every.extend(self.uses[name])
            self.check(operation, every)

    def reachable(self, spreads: list[str]) -> list[str]:
        """The fragments `spreads` reach, each once, without recursion."""
        seen: set[str] = set()
        order: list[str] = []
        stack = list(reversed(spreads))
        while stack:
            name = stack.pop()
            if name in seen or name not in self.uses:
                continue
            seen.add(name)
            order.append(name)
            stack.extend(reversed(self.spreads[name]))
        return order

    def check(self, operation: OperationDefinitionNode, uses: list[VariableUsage]) -> None:
        definitions: dict[str, VariableDefinitionNode] = {}
        for definition in operation.variable_definitions or ():
            definitions[definition.variable.name.value] = definition
        named = f" by operation '{operation.name.value}'" if operation.name else ""
        for use in uses:
            name = use.node.name.value
            if name not in definitions:
                message = f"Variable '${name}' is not defined{named}."
                self.report_error(GraphQLError(message, [use.node, operation]))
        used = {use.node.name.value for use in uses}
        where = f" in operation '{operation.name.value}'" if operation.name else ""
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in used:
                message = f"Variable '${name}' is never used{where}."
                self.report_error(GraphQLError(message, definition))
        for use in uses:
            known = definitions.get(use.node.name.value)
            if known is not None and use.type is not None:
                self.check_position(known, use)

    def check_position(self, definition: VariableDefinitionNode, use: VariableUsage) -> None:
        """graphql-core's `VariablesInAllowedPositionRule` on one use."""
        schema = self.context.schema
        var_type = type_from_ast(schema, definition.type)
        name = use.node.name.value
        if var_type is None or use.type is None:
            return
        if not allowed_variable_usage(
            schema, var_type, definition.default_value, use.type, use.default_value
        ):
            message = (
                f"Variable '${name}' of type '{var_type}' used"
                f" in position expecting type '{use.type}'."
            )
            self.report_error(GraphQLError(message, [definition, use.node]))
        parent = use.parent_type
        if is_input_object_type(parent) and parent.is_one_of and is_nullable_type(var_type):
            message = (
                f"Variable '${name}' is of type '{var_type}' but must be non-nullable"
                f" to be used for OneOf Input Object '{parent}'."
            )
            self.report_error(GraphQLError(message, [definition, use.node]))


def type_info_kept() -> bool:
    """Whether graphql-core's `ValidationContext` still keeps its `TypeInfo` as `_type_info`
    (not public API: this rule reads default values there). Checked on a real context, so a
    release that renamed it makes the gateway validate with graphql-core's own rules."""
    schema = GraphQLSchema(GraphQLObjectType("Query", {"x": GraphQLField(GraphQLString)}))
    context = ValidationContext(schema, parse("{ x }"), TypeInfo(schema), lambda _error: None)
    return isinstance(getattr(context, "_type_info", None), TypeInfo)
