"""Descriptions for fields whose meaning follows from their name alone.

Every type and field of the schema has a description (GraphiQL shows them; a test checks).
Fields declared without one get it here, by ``Type.field`` or, for names that mean the same
everywhere (``id``, ``edges``, ``message``...), by field name.
"""

from __future__ import annotations

from graphql import GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema

BY_NAME = {
    "id": "Global, opaque id (see `Node`).",
    "edges": "The items of this page, each with its cursor.",
    "pageInfo": "Where this page sits in the list.",
    "node": "The item.",
    "message": "What went wrong, for people (not for matching on).",
    "customerId": "The customer's global id.",
    "otherCustomerId": "The other customer's global id.",
    "customer": "The customer as it is now.",
    "account": "The loyalty account as it is now.",
    "entry": "The ledger entry the request posted.",
    "interaction": "The interaction recorded.",
    "idempotencyKey": "The key the request carried.",
    "source": "Where it came from.",
    "externalId": "Its id in its source system.",
    "name": "Name, as shown to people.",
    "displayName": "Full name for display (golden profile).",
    "givenName": "First name (golden profile).",
    "familyName": "Last name (golden profile).",
    "createdAt": "When guestgraph first saw it.",
    "status": "The status it entered.",
    "at": "When.",
    "occurredAt": "When it happened.",
    "linkedAt": "When it was linked to this customer.",
    "subject": "A short summary.",
    "body": "The full text.",
    "reason": "Why (shown to support and in the ledger).",
    "channel": "The channel.",
    "granted": "Whether the customer agreed.",
    "orderCount": "How many orders.",
    "balance": "Points available now.",
    "requested": "Points the request asked for.",
    "program": "The loyalty program's name.",
    "tier": "The tier in the program, when it has tiers.",
    "description": "Longer description.",
    "quantity": "Units ordered (may be fractional, e.g. weight).",
    "unitPrice": "Price of one unit.",
    "total": "Total amount.",
    "subtotal": "Items before tax, tip and discount.",
    "tax": "Tax.",
    "tip": "Tip.",
    "discount": "Discounts applied.",
    "placedAt": "When the customer placed it.",
    "fulfillment": "How it reaches the customer.",
    "dietary": "Dietary needs to set (replaces the list), e.g. vegetarian.",
    "allergens": "Allergens to set (replaces the list), e.g. peanuts.",
    "cuisines": "Cuisines they like (replaces the list).",
    "marketingConsent": "Marketing consent per channel.",
    "averageOrderValue": "Total spend divided by order count (null without orders).",
    "firstOrderAt": "Their first order.",
    "lastOrderAt": "Their latest order.",
    "hasNextPage": "Whether more items follow this page.",
    "hasPreviousPage": "Whether items come before this page.",
    "startCursor": "Cursor of the first item (null on an empty page).",
    "endCursor": "Cursor of the last item (null on an empty page).",
}


def describe_fields(schema: GraphQLSchema) -> None:
    """Fill in the descriptions fields were declared without (see the module docstring)."""
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__"):
            continue
        if isinstance(
            graphql_type, GraphQLObjectType | GraphQLInputObjectType | GraphQLInterfaceType
        ):
            for field_name, field in graphql_type.fields.items():
                if not field.description:
                    field.description = BY_NAME.get(field_name)
