"""The configuration layer: what the user chose, resolved and validated once (options, scenario, sizes, routing)."""
