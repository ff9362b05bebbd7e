"""`python -m car` is the `car` command."""

from car.commands.cli import main

raise SystemExit(main())
