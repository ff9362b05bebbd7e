"""dora's operators: a node whose code runs as tasks inside one runtime process.

`runtime` (the process: routes, ends, restarts in place), `scheduler` (carts, labors and
a supervisor: the lightweight-tasks seed), `loading` (an operator's file and its
`Operator` class), `printed` (what an operator prints, and its `send_stdout_as` /
`send_logs_as` outputs). `python -m car.operators` is what the daemon starts for a node
with `operator:` or `operators:` (car.spec.model.OPERATOR_RUNTIME).
"""
