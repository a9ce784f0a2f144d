"""The public surface: sorted explicit __all__, an exception tree with builtin bases, no torch."""

from __future__ import annotations

import subprocess
import sys

import securecmr
from securecmr import errors


def test_all_is_sorted_and_complete() -> None:
    names = securecmr.__all__
    assert list(names) == sorted(names)
    for name in names:
        assert hasattr(securecmr, name), name


def test_errors_all_sorted_and_rooted() -> None:
    assert list(errors.__all__) == sorted(errors.__all__)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.SecureCMRError)
        if cls is not errors.SecureCMRError:
            # every error below the root documents itself in the module docstring's tree
            assert name in (errors.__doc__ or ""), name


def test_errors_inherit_matching_builtins() -> None:
    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.AuthenticationError, PermissionError)
    assert issubclass(errors.PermissionDeniedError, PermissionError)
    assert issubclass(errors.StoreNotFoundError, FileNotFoundError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.CollectionNotFoundError, LookupError)


def test_import_does_not_pull_torch() -> None:
    code = "import sys, securecmr; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cli_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "securecmr.cli.main", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert securecmr.__version__ in out.stdout
