"""Execute: run a compiled artifact where the target says (a local worker process pinned to
its cores, a board over TVM RPC, or a farm of boards behind a tracker)."""
