"""Query model: one plan for the native JSON query and InfluxQL, mergeable partial aggregates,
the coordinator-side merge and finalisation (see docs/api.md, docs/format/partials.md)."""
