"""InfluxQL: lexer, parser and planner of the `/query` endpoint."""
