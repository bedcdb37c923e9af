"""`python -m duvae_cli` (and `torchrun -m duvae_cli`) runs the CLI."""

from duvae_cli.cli import main

main()
