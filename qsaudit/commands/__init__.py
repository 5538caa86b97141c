"""CLI commands, one module each; every module registers its command on ``qsaudit.cli.app``."""
