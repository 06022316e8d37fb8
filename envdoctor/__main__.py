"""``python -m envdoctor``.

For a full ``check`` the torch probe's child is started before the CLI (click,
rules, knowledge tables) is even imported: the parent's own start-up then hides
behind the torch import it waits for anyway.
"""
import sys


def main() -> None:
    from envdoctor.probes import _prestart

    _prestart.start_for(sys.argv[1:])
    from envdoctor.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
