"""The coordinator: knows the machines' daemons and the dataflows placed on them (`car coordinator`).

It is never on the data path: nodes on different machines talk to each other over
tcp://. It places a dataflow's nodes by `deploy.machine`, gathers where each machine's
nodes listen, starts the run everywhere or nowhere, measures each daemon's liveness and
clock offset over its heartbeat, and tells the readers of a lost machine's outputs that
they have ended.
"""
