"""Runtimes (embedded, Faust), engine, policy, rules loading, metrics and the CLI."""
