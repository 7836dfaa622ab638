"""Query protection: limits checked on the document before anything executes.

- tokens (parser limit), depth (fragments followed, cycles safe), aliases, directives per
  field, and cost (list sizes x nesting, computed with the request's variables);
- introspection only for callers allowed it (admins, or everyone in development mode);
- validation errors without "Did you mean ...?" suggestions for everyone else.

The cheap limit checks run before graphql-core's own validation, so a hostile document
(500 aliases, a fragment fan-out, 10 unknown directives) gets one precise error and never
reaches the quadratic rules. Parsed and validated documents are cached.

``ProtectionExtension`` applies the same checks to operations that do not come through
the HTTP handler (websocket subscriptions), and lets the HTTP handler hand its already
prepared document to strawberry so nothing is parsed or validated twice.
"""

from __future__ import annotations

import contextvars
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    Node,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    parse,
    specified_rules,
)
from graphql.validation import ASTValidationRule, ValidationContext
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from domain.viewer import Role, Viewer

DEFAULT_LIST_SIZE = 10
PAGE_ARGUMENTS = ("first", "last", "limit")
INTROSPECTION_FIELDS = {"__schema", "__type"}
SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


@dataclass(frozen=True)
class Limits:
    max_depth: int = 8
    max_aliases: int = 15
    max_tokens: int = 2000
    max_directives_per_field: int = 3
    max_cost: int = 20_000
    max_duplicate_fields: int = 10
    development: bool = False


def limit_error(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


def may_introspect(viewer: Viewer, limits: Limits) -> bool:
    return limits.development or viewer.role is Role.ADMIN


def strip_suggestions(message: str) -> str:
    return SUGGESTION.sub("", message)


# --- cheap structural checks ---------------------------------------------------------------


def _walk(node: Node) -> Iterator[Node]:
    """Every node under ``node`` (iterative: deep documents cannot exhaust the stack)."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        yield current
        for key in current.keys:
            value = getattr(current, key, None)
            if isinstance(value, Node):
                stack.append(value)
            elif isinstance(value, tuple | list):
                stack.extend(v for v in value if isinstance(v, Node))


def _most_repeated_field(selection_set: SelectionSetNode) -> int:
    counts: dict[str, int] = {}
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            key = (selection.alias or selection.name).value
            counts[key] = counts.get(key, 0) + 1
    return max(counts.values(), default=0)


def _depth(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    memo: dict[str, int],
    visiting: set[str],
    skip_meta: bool,
) -> int:
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if skip_meta and selection.name.value.startswith("__"):
                continue
            child = _depth(selection.selection_set, fragments, memo, visiting, skip_meta)
            deepest = max(deepest, 1 + child)
        elif isinstance(selection, InlineFragmentNode):
            inner = _depth(selection.selection_set, fragments, memo, visiting, skip_meta)
            deepest = max(deepest, inner)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in visiting or name not in fragments:
                continue  # cycles and unknown fragments are validation errors later
            if name not in memo:
                visiting.add(name)
                memo[name] = _depth(
                    fragments[name].selection_set, fragments, memo, visiting, skip_meta
                )
                visiting.discard(name)
            deepest = max(deepest, memo[name])
    return deepest


def check_limits(
    document: DocumentNode, limits: Limits, *, allow_introspection: bool
) -> list[GraphQLError]:
    """The first broken limit as one error, or nothing."""
    aliases = 0
    for node in _walk(document):
        if isinstance(node, SelectionSetNode):
            duplicate = _most_repeated_field(node)
            if duplicate > limits.max_duplicate_fields:
                return [
                    limit_error(
                        f"A field is repeated {duplicate} times in one selection; at most "
                        f"{limits.max_duplicate_fields} are allowed.",
                        "FIELD_DUPLICATION",
                        limit=limits.max_duplicate_fields,
                    )
                ]
        if isinstance(node, FieldNode):
            if node.alias is not None:
                aliases += 1
            if not allow_introspection and node.name.value in INTROSPECTION_FIELDS:
                return [
                    limit_error(
                        "Introspection is disabled for this caller.", "INTROSPECTION_DISABLED"
                    )
                ]
        directives = getattr(node, "directives", None)
        if directives and len(directives) > limits.max_directives_per_field:
            return [
                limit_error(
                    f"More than {limits.max_directives_per_field} directives on one location.",
                    "TOO_MANY_DIRECTIVES",
                    limit=limits.max_directives_per_field,
                )
            ]
    if aliases > limits.max_aliases:
        return [
            limit_error(
                f"The document has {aliases} aliases; at most {limits.max_aliases} are allowed.",
                "TOO_MANY_ALIASES",
                limit=limits.max_aliases,
            )
        ]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, int] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            depth = _depth(definition.selection_set, fragments, memo, set(), allow_introspection)
            if depth > limits.max_depth:
                return [
                    limit_error(
                        f"The query is {depth} levels deep; at most {limits.max_depth} "
                        "are allowed.",
                        "DEPTH_LIMIT",
                        limit=limits.max_depth,
                    )
                ]
    return []


# --- cost ------------------------------------------------------------------------------


def _argument_int(node: FieldNode, name: str, variables: Mapping[str, Any]) -> int | None:
    for argument in node.arguments or ():
        if argument.name.value != name:
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            found = variables.get(value.name.value)
            if isinstance(found, int) and not isinstance(found, bool) and abs(found) < 2**31:
                return found
            return None  # not an Int: coercion reports it, with the variable's name
    return None


def _multiplier(
    node: FieldNode,
    definition: GraphQLField,
    parent: GraphQLNamedType,
    variables: Mapping[str, Any],
) -> int:
    for name in PAGE_ARGUMENTS:
        if name in definition.args:
            value = _argument_int(node, name, variables)
            if value is None:
                default = definition.args[name].default_value
                value = default if isinstance(default, int) else DEFAULT_LIST_SIZE
            return max(0, value)
    if isinstance(get_nullable_type(definition.type), GraphQLList):
        # a connection's edges/nodes were already counted by the paginated parent field
        return 1 if parent.name.endswith("Connection") else DEFAULT_LIST_SIZE
    return 1


@dataclass
class _CostWalk:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    memo: dict[str, int] = field(default_factory=dict)

    def selection_cost(self, selection_set: SelectionSetNode | None, parent: Any) -> int:
        if selection_set is None or parent is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field_cost(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_cost(selection.selection_set, target)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment_cost(selection.name.value)
        return total

    def fragment_cost(self, name: str) -> int:
        if name not in self.memo:
            self.memo[name] = 0  # a cycle (already a validation error) counts nothing
            fragment = self.fragments.get(name)
            if fragment is not None:
                target = self.schema.get_type(fragment.type_condition.name.value)
                self.memo[name] = self.selection_cost(fragment.selection_set, target)
        return self.memo[name]

    def field_cost(self, node: FieldNode, parent: Any) -> int:
        if node.name.value.startswith("__"):
            return 0
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 1
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return 1
        child = get_named_type(definition.type)
        nested = self.selection_cost(node.selection_set, child)
        return 1 + _multiplier(node, definition, parent, self.variables) * nested


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> int:
    """Fields weighted by how many times they can be resolved: a field under
    ``orders(first: 50)`` counts 50 times; unpaginated lists count ``DEFAULT_LIST_SIZE``."""
    root = schema.get_root_type(operation.operation)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walk = _CostWalk(schema, fragments, variables or {})
    return walk.selection_cost(operation.selection_set, root)


# --- preparing documents -----------------------------------------------------------------


@dataclass(frozen=True)
class PreparedDocument:
    query: str
    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]
    costs: dict[tuple[Any, ...], int] = field(default_factory=dict, compare=False, hash=False)
    """Cost per (operation name, page-size variables): computed once per shape."""

    def cost(
        self, schema: GraphQLSchema, operation: OperationDefinitionNode, variables: Any
    ) -> int:
        assert self.document is not None
        values = variables if isinstance(variables, dict) else {}
        key = (
            operation.name.value if operation.name else None,
            *sorted((k, v) for k, v in values.items() if isinstance(v, int)),
        )
        found = self.costs.get(key)
        if found is None:
            found = operation_cost(schema, self.document, operation, values)
            if len(self.costs) < 64:
                self.costs[key] = found
        return found


class DocumentCache:
    """Parsed and validated documents, per (document text, may introspect), LRU-bounded."""

    def __init__(self, schema: GraphQLSchema, limits: Limits, max_entries: int = 1000) -> None:
        self.schema = schema
        self.limits = limits
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, bool], PreparedDocument] = OrderedDict()

    def prepare(self, query: str, *, allow_introspection: bool) -> PreparedDocument:
        key = (query, allow_introspection)
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        prepared = prepare_document(
            self.schema, query, self.limits, allow_introspection=allow_introspection
        )
        self._entries[key] = prepared
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return prepared


MAX_NESTING = 64
"""Brackets nested deeper than this are refused before parsing: the recursive parser would
otherwise run into Python's recursion limit (which can upset the interpreter afterwards)."""


def max_nesting(query: str) -> int:
    """How deeply ``{ ( [`` nest in ``query``, outside strings and comments."""
    depth = deepest = 0
    in_string = in_comment = escaped = False
    for ch in query:
        if in_comment:
            in_comment = ch not in "\r\n"
        elif in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "#":
            in_comment = True
        elif ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]":
            depth -= 1
    return deepest


def prepare_document(
    schema: GraphQLSchema, query: str, limits: Limits, *, allow_introspection: bool
) -> PreparedDocument:
    """Parse with the token limit, check the limits, then validate (strawberry's rules too)."""
    if max_nesting(query) > MAX_NESTING:
        error = limit_error("The document is nested too deeply.", "DEPTH_LIMIT")
        return PreparedDocument(query, None, (error,))
    try:
        document = parse(query, no_location=False, max_tokens=limits.max_tokens)
    except GraphQLError as error:
        code = "GRAPHQL_PARSE_FAILED"
        if "tokens" in error.message:
            code = "TOO_MANY_TOKENS"
        elif "nested too deeply" in error.message:
            code = "DEPTH_LIMIT"
        message = error.message if code == "TOO_MANY_TOKENS" else f"Syntax Error: {error.message}"
        message = message.replace("Syntax Error: Syntax Error:", "Syntax Error:")
        return PreparedDocument(query, None, (limit_error(message, code),))
    except RecursionError:  # pragma: no cover - graphql-core reports deep nesting itself
        return PreparedDocument(
            query, None, (limit_error("The document is nested too deeply.", "DEPTH_LIMIT"),)
        )
    limit_errors = check_limits(document, limits, allow_introspection=allow_introspection)
    if limit_errors:
        return PreparedDocument(query, None, tuple(limit_errors))
    errors = validate_document(schema, document, tuple(specified_rules))
    if errors:
        hide = not allow_introspection
        typed = tuple(
            GraphQLError(
                strip_suggestions(e.message) if hide else e.message,
                nodes=e.nodes,
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
            )
            for e in errors
        )
        return PreparedDocument(query, None, typed)
    return PreparedDocument(query, document, ())


# --- the strawberry extension --------------------------------------------------------------

PREPARED: contextvars.ContextVar[PreparedDocument | None] = contextvars.ContextVar(
    "guestgraph_prepared_document", default=None
)
"""Set by the HTTP handler around ``schema.execute``: the document it already prepared."""


def _viewer_and_limits(context: Any) -> tuple[Viewer, Limits]:
    viewer = getattr(context, "viewer", None)
    request = getattr(context, "request", None)
    app = getattr(request, "app", None)
    limits = getattr(getattr(app, "state", None), "protection_limits", None)
    return (
        viewer if isinstance(viewer, Viewer) else Viewer(subject="?", role=Role.ANONYMOUS),
        limits if isinstance(limits, Limits) else Limits(),
    )


def is_timeout(error: BaseException | None) -> bool:
    """A PostgreSQL ``statement_timeout`` cancel or an asyncio timeout, however wrapped."""
    seen = 0
    while error is not None and seen < 8:
        if type(error).__name__ in {"QueryCanceledError", "TimeoutError"}:
            return True
        error = getattr(error, "orig", None) or error.__cause__
        seen += 1
    return False


def timeout_error(error: GraphQLError) -> GraphQLError:
    return GraphQLError(
        "The operation took too long.",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "OPERATION_TIMEOUT"},
    )


class ProtectionExtension(SchemaExtension):
    """Uses the HTTP handler's prepared document, or applies the limits itself; turns
    statement timeouts into typed ``OPERATION_TIMEOUT`` errors (before any masking)."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [  # type: ignore[union-attr]
                timeout_error(e) if is_timeout(e.original_error) else e for e in errors
            ]

    def on_parse(self) -> Iterator[None]:
        prepared = PREPARED.get()
        if (
            prepared is not None
            and prepared.document is not None
            and prepared.query == self.execution_context.query
        ):
            self.execution_context.graphql_document = prepared.document
        yield

    def on_validate(self) -> Iterator[None]:
        prepared = PREPARED.get()
        context = self.execution_context
        if prepared is not None and context.graphql_document is prepared.document:
            context.pre_execution_errors = []  # validated by the handler already
        else:
            viewer, limits = _viewer_and_limits(context.context)
            allow = may_introspect(viewer, limits)
            context.validation_rules = (
                limits_rule(limits, allow_introspection=allow),
                *context.validation_rules,
            )
        yield


def limits_rule(limits: Limits, *, allow_introspection: bool) -> type[ASTValidationRule]:
    """``check_limits`` as a graphql-core validation rule (for the websocket path)."""

    class LimitsRule(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for error in check_limits(
                context.document, limits, allow_introspection=allow_introspection
            ):
                context.report_error(error)

    return LimitsRule


def install_protection(schema: Any) -> None:
    """Add ``ProtectionExtension`` to a strawberry schema once (idempotent)."""
    current = list(schema.extensions)
    if ProtectionExtension not in current:
        schema.extensions = [*current, ProtectionExtension]


def operation_of(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    for operation in operations:
        if operation.name is not None and operation.name.value == name:
            return operation
    return None


__all__ = [
    "PREPARED",
    "DocumentCache",
    "Limits",
    "OperationType",
    "PreparedDocument",
    "ProtectionExtension",
    "install_protection",
    "operation_cost",
    "operation_of",
]
