"""socket -> stage vs file -> stage (see bench/live_to_stage.py)."""

from bench.live_to_stage import run

if __name__ == "__main__":
    run("socket")
