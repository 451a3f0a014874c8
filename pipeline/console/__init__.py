"""The review console: a reader of alerts and actions, where reviewers decide (docs/console.md)."""
