"""Subcommands of the ``coach`` command line, one module each.

Every module here defines ``register(subparsers)`` which adds its parser and
sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and returning
an exit status). The command line discovers the modules, so adding a command
means adding one module.
"""
