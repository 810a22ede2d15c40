"""Entry point of the ``bbdirect`` console script.

Sub-commands live in small modules under :mod:`bbdirect.commands` and are imported only when used, so
``bbdirect seal`` does not pay for Flask or SQLAlchemy and a broken optional piece cannot stop the others.
"""

from __future__ import annotations

import importlib

import click

#: command name -> "module:attribute" of a click.Command. One line per command; the module owns its options.
COMMANDS: dict[str, str] = {
    "demo": "bbdirect.commands.demo:demo",
    "seal": "bbdirect.commands.messages:seal",
    "unseal": "bbdirect.commands.messages:unseal",
    "send": "bbdirect.commands.messages:send",
    "receive": "bbdirect.commands.messages:receive",
    "lookup": "bbdirect.commands.discovery:lookup",
    "publish": "bbdirect.commands.discovery:publish",
    "certs": "bbdirect.commands.certs:certs",
    "ccda": "bbdirect.commands.ccda:ccda",
    "serve": "bbdirect.commands.bridge:serve",
    "worker": "bbdirect.commands.bridge:worker",
    "db": "bbdirect.commands.bridge:db",
    "fhir": "bbdirect.commands.fhir:fhir",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command whose module is not built yet
            if exc.name != module_name:
                raise
            return None
        return getattr(module, attr, None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bbdirect")
def main() -> None:
    """Blue Button Direct: send a patient's record to any Direct address."""


if __name__ == "__main__":  # pragma: no cover
    main()
