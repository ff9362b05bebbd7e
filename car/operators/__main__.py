"""`python -m car.operators`: the runtime of a node's operators (car.operators.runtime)."""

import sys

from car.operators.runtime import main

sys.exit(main())
