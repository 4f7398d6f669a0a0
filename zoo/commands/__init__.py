"""One module per ``zoo`` subcommand; see ``zoo/cli.py`` for the contract."""
