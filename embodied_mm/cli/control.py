"""The chunk-execution options ``rollout``, ``demo`` and ``eval`` share with ``deploy``."""

from __future__ import annotations

MODE_HELP = (
    "Chunk execution, as deploy: open_loop, ensemble or async (in simulation: a chunk arrives "
    "--latency-steps steps after it was asked for)."
)
HZ_HELP = "Control rate the safety filter assumes (the envs step at 20 Hz)."
REFILL_HELP = "async: request the next chunk at this many queued actions."
LATENCY_HELP = "async: control steps a chunk takes to arrive (the simulated policy latency)."
