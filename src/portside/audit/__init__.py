"""The audit log: who did what to which resource, when, and whether it succeeded."""
