"""`python -m sim` is the same as the `cementsim` command."""

from sim.cli import main

raise SystemExit(main())
