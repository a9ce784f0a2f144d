"""The ``securecmr`` command line. One module per command group; see :mod:`securecmr.cli.main`."""
