"""The version of the wire format of every message livewatch reads or writes — events, findings, actions,
dead letters: one number, bumped for all of them together."""

SCHEMA_VERSION = 1
