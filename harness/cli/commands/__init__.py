"""One module per subcommand: each exposes `register(subparsers)` and `main(args) -> exit code`."""
