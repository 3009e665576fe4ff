"""`python -m streamer` and the `streamer` command: signals are held from here on
(runtime/signals.py), before the rest of streamer is imported."""

import os

from streamer.runtime.signals import hold_signals


def main() -> None:
    hold_signals()
    # streamer's config models use no pydantic plugin; looking for one reads every
    # installed package's entry points (about 10 ms) as the first model is built
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from streamer.cli import entry

    entry()


if __name__ == "__main__":
    main()
