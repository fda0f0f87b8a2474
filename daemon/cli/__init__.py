"""The `dropsight` command line: one module per command group."""
