"""`car doctor`'s parts: will the car side of a graph run on the target kernel?

- `trace`: strace's output reduced to calls, argument tokens and the process tree.
- `arch`: the calls an x86_64 trace shows, as the target architecture's C library makes them.
- `profile`: what a target kernel has (the shipped StarryOS profile, or a JSON file).
- `gaps`: what a run used that the target lacks, or runs differently.
- `traced`: the car side of a graph run under strace (and inside `confine`).
- `confine`: a program run with the gaps failing as the target fails them (seccomp).
- `outcome`: what failing a gap did to the run.
"""
