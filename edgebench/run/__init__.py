"""Run: execute a compiled artifact where the target says (a local worker process, or a board)."""

from edgebench import _callable_module

_callable_module(__name__, "edgebench.pipeline:run")  # edgebench.run(...) stays the API verb
