"""Run: execute a compiled artifact where the target says (a local worker process, or a board)."""
