"""The `car` command: one table of subcommands (`cli`) and what installed packages add (`extensions`)."""
