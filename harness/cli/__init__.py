"""`oomlab` on the command line: the parser, one module per subcommand, and the wiring of the standard hooks."""
