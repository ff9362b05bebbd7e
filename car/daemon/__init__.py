"""The daemon side: it runs its machine's plan (`daemon`), its timers (`timers`), logs (`logs`),
CPU placement (`affinity`) and answers the control socket."""
