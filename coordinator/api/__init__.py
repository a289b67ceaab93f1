"""HTTP routes of the coordinator, one module per concern; `create_app` includes them all."""
