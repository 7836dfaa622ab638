"""Pure mappers: one module per source, vendor JSON in, domain events out."""
