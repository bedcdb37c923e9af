"""The `duvae` commands, one module per group; each command translates flags into library calls and
prints the result (cli.py registers them and turns errors into one line and an exit code)."""
