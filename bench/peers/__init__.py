"""Peers in the bench: other log shippers run on the same inputs as the streamer.

``fluent_bit`` generates Fluent Bit's configuration (tail -> CSV file, tail -> HTTP) and
the output it must write, ``complete`` watches that output reach its final record count
(Fluent Bit does not exit when it is done), ``scenarios`` builds the measured rows of
``python -m bench.run`` (key ``peers``), skipped when no binary is found.
``build_fluent_bit.sh`` builds Fluent Bit from source.
"""
