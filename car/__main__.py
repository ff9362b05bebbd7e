"""`python -m car` is the `car` command."""

from car.cli import main

raise SystemExit(main())
