"""`python -m streamer` and the `streamer` command: signals are held from here on
(runtime/signals.py), before the rest of streamer is imported."""

from streamer.runtime.signals import hold_signals


def main() -> None:
    hold_signals()
    from streamer.cli import entry

    entry()


if __name__ == "__main__":
    main()
