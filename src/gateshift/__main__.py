"""``python -m gateshift`` runs the command-line tool."""

from gateshift.cli.main import main

raise SystemExit(main())
