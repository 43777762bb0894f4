"""The ``gateshift`` command line: one small module per subcommand (parse, call, print)."""
