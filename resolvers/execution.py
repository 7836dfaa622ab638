"""Execution with a short path for plain leaf fields.

graphql-core spends most of a large response's time on per-field bookkeeping: for every
field it builds a resolve-info tuple, calls strawberry's resolver wrapper (which calls the
field's ``get_result``, which calls ``getattr``), then walks ``complete_value`` down to the
leaf. For a field that strawberry itself calls *basic* (no resolver, no extensions, no
permission classes: ``is_basic_field``) and whose type is a scalar or enum, all of that
amounts to ``coerce_output_value(getattr(source, python_name))``.

``LeanExecutor`` does exactly that for such fields, and hands every other case back to
graphql-core unchanged: fields with arguments, resolvers or extensions (PII masking and
permission checks are field extensions, so they never take the short path), object and
list fields, a value that is missing, ``None`` where the type is non-null, or that does
not coerce. graphql-core then produces its usual error. With graphql middleware installed
(a schema extension implementing ``resolve``) nothing is shortened. The customer-360
document resolves ~450 fields, ~320 of them such leaves; ``bench/customer360.py`` measures
the difference.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# (python attribute name, leaf type, non-null) for a GraphQLField that takes the short path
_LEAN = "_guestgraph_lean_leaf"


def mark_lean_fields(schema: GraphQLSchema) -> int:
    """Mark every basic scalar/enum field of ``schema``'s object types; return how many."""
    marked = 0
    for named in schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        for field in named.fields.values():
            definition = (field.extensions or {}).get("strawberry-definition")
            resolve = field.resolve
            if definition is None or resolve is None or field.args:
                continue
            if not getattr(resolve, "_is_default", False) or not definition.is_basic_field:
                continue
            kind = field.type
            non_null = isinstance(kind, GraphQLNonNull)
            if non_null:
                kind = kind.of_type
            if isinstance(kind, GraphQLScalarType | GraphQLEnumType):
                setattr(field, _LEAN, (definition.python_name, kind, non_null))
                marked += 1
    return marked


class LeanExecutor(StrawberryGraphQLCoreExecutionContext):
    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        middleware = self.middleware_manager
        if not node.arguments and (middleware is None or not middleware.middlewares):
            field = parent_type.fields.get(node.name.value)
            lean = getattr(field, _LEAN, None) if field is not None else None
            if lean is not None:
                name, leaf, non_null = lean
                try:
                    value = getattr(source, name)
                    if value is None:
                        if not non_null:
                            return None
                    else:
                        coerced = leaf.coerce_output_value(value)
                        if coerced is not None and coerced is not Undefined:
                            return coerced
                except Exception:  # graphql-core, below, reports it the usual way
                    pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
