"""Click option factories shared by the command modules.

Several commands take the same kind of input (repeatable certificate/key/anchor files, the same
algorithm or SMTP option groups); building those options in one place keeps their types and
validation identical across ``seal``, ``unseal``, ``send``, ``receive`` and ``publish``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from direct.trust.policy import TrustPolicy

F = TypeVar("F", bound=Callable[..., Any])

#: An existing regular file (a PEM certificate, key or anchor): click rejects a missing path or a folder.
EXISTING_FILE = click.Path(exists=True, dir_okay=False)


def existing_files(*decls: str, required: bool = False, help: str | None = None) -> Callable[[F], F]:
    """A repeatable option naming existing files (certificates, keys, trust anchors)."""
    return click.option(*decls, multiple=True, required=required, type=EXISTING_FILE, help=help)


def trust_policy_option(help: str, **extra: Any) -> Callable[[F], F]:
    """``--policy trusted|public`` (choices straight from :class:`TrustPolicy`, so they cannot drift)."""
    return click.option(
        "--policy",
        type=click.Choice([p.value for p in TrustPolicy]),
        default=TrustPolicy.TRUSTED.value,
        show_default=True,
        help=help,
        **extra,
    )


def with_options(options: Sequence[Callable[[F], F]]) -> Callable[[F], F]:
    """Apply a group of click options in the order listed (so ``--help`` shows them in that order)."""

    def deco(fn: F) -> F:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return deco
