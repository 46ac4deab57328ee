"""The validation rules the gateway runs, with the overlap rule on a budget of its own.

graphql-core meters the work of `OverlappingFieldsCanBeMergedRule` and aborts past 500,000
units: most of a second of CPU. On a merged document (`bff.graphql.documents`) the queries of
the README and the test suite spend at most a few units (pairs of fields sharing a response
name, fragments spread side by side: n fragments in one selection set cost about 2.5 n^2);
`OVERLAP_BUDGET` still lets 20 fragments sit side by side, and bounds what a document built to
defeat the merge (a hundred distinct fragments selecting the same field, a chain of them) can
spend to a few milliseconds. A document past it is refused as `QUERY_TOO_COMPLEX`, not as the
client's syntax mistake.

The three rules on variable uses run as one, `VariableUsesRule`, which reads the uses from the
validation pass instead of walking every fragment again (`bff.graphql.variable_uses`).

`FiniteFloatsRule` closes a gap of graphql-core: a `Float` literal past the double range
(`1e999`) parses to infinity and would reach resolvers; as a variable it cannot (JSON has no
infinity, and graphql-core's `Float` refuses it), so the literal is refused the same way.
"""

from __future__ import annotations

import math
from typing import Any

from graphql import (
    FloatValueNode,
    GraphQLError,
    GraphQLFloat,
    IntValueNode,
    get_named_type,
    specified_rules,
)
from graphql.validation import (
    ASTValidationRule,
    NoSchemaIntrospectionCustomRule,
    NoUndefinedVariablesRule,
    NoUnusedVariablesRule,
    OverlappingFieldsCanBeMergedRule,
    ValidationContext,
    ValidationRule,
    VariablesInAllowedPositionRule,
)
from graphql.validation.validate import ValidationAbortedError

from bff.errors import QueryTooComplex
from bff.graphql.variable_uses import VariableUsesRule, type_info_kept

OVERLAP_BUDGET = 1_000
TOO_COMPLEX = "The query is too complex to validate: simplify its fragments and repeated fields"


class TooComplexToValidate(ValidationAbortedError):
    """The overlap rule ran out of its budget: one `QUERY_TOO_COMPLEX` request error."""

    def __init__(self) -> None:
        super().__init__(TOO_COMPLEX, original_error=QueryTooComplex(TOO_COMPLEX))


class BoundedOverlapRule(OverlappingFieldsCanBeMergedRule):
    """graphql-core's overlap rule with `OVERLAP_BUDGET` units of work for the document."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        budget = getattr(self.rule_context, "remaining_complexity_budget", None)
        if isinstance(budget, int):  # another graphql-core release: its own budget stands
            self.rule_context.remaining_complexity_budget = OVERLAP_BUDGET

    def enter_selection_set(self, *args: Any) -> None:
        try:
            super().enter_selection_set(*args)
        except ValidationAbortedError:
            if getattr(self.rule_context, "remaining_complexity_budget", 0) >= 0:
                raise  # not the budget: graphql-core's cap of 100 errors
            raise TooComplexToValidate() from None


class FiniteFloatsRule(ValidationRule):
    """A `Float` literal must be a finite number, as a `Float` variable must."""

    def enter_float_value(self, node: FloatValueNode, *_args: Any) -> None:
        self.check(node)

    def enter_int_value(self, node: IntValueNode, *_args: Any) -> None:
        self.check(node)

    def check(self, node: FloatValueNode | IntValueNode) -> None:
        if get_named_type(self.context.get_input_type()) is not GraphQLFloat:
            return
        try:
            finite = math.isfinite(float(node.value))
        except OverflowError:  # an integer literal past the double range
            finite = False
        if not finite:
            message = f"Float cannot represent non-finite value: {node.value[:40]}"
            self.report_error(GraphQLError(message, node))


# read from the one validation pass by `VariableUsesRule`, instead of a walk of their own
VARIABLE_RULES = (NoUndefinedVariablesRule, NoUnusedVariablesRule, VariablesInAllowedPositionRule)


def validation_rules(*, introspection: bool) -> list[type[ASTValidationRule]]:
    """graphql-core's specified rules, the overlap rule bounded, the variable rules in one
    pass (when graphql-core's context still keeps the type info that rule reads: else its own
    three), finite floats, and no introspection when `introspection` is off."""
    merged = type_info_kept()
    rules: list[type[ASTValidationRule]] = []
    for rule in specified_rules:
        if rule is OverlappingFieldsCanBeMergedRule:
            rules.append(BoundedOverlapRule)
        elif merged and rule is NoUndefinedVariablesRule:
            rules.append(VariableUsesRule)
        elif not merged or rule not in VARIABLE_RULES:
            rules.append(rule)
    rules.append(FiniteFloatsRule)
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def too_complex(errors: list[GraphQLError]) -> bool:
    """Whether validation stopped on the overlap budget."""
    return any(isinstance(error, TooComplexToValidate) for error in errors)
