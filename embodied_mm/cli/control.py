"""The chunk-execution options ``rollout``, ``demo`` and ``eval`` share with ``deploy``."""

from __future__ import annotations

MODE_HELP = (
    "Chunk execution, as deploy: open_loop, ensemble, async or rtc (real-time chunking: a flow "
    "head, or a chunk head trained with --rtc-max-delay). In simulation a chunk arrives "
    "--latency-steps steps after it was asked for."
)
HZ_HELP = "Control rate the safety filter assumes (the envs step at 20 Hz)."
REFILL_HELP = "async, rtc: request the next chunk at this many queued actions."
LATENCY_HELP = (
    "The simulated policy latency in control steps (50 ms each at 20 Hz): a chunk asked for at "
    "step t plays from step t + N. async, rtc keep playing the queue meanwhile (default 1); "
    "open_loop, ensemble wait for it, the arm holding, as on a robot (default 0)."
)
VIDEO_CAMERA_HELP = (
    "What videos show: presentation (480x360 view of the whole arm, instruction and plan drawn "
    "on) or policy (the front camera the policy sees)."
)
DISPLAY_HELP = (
    "rerun: log cameras, state, raw and filtered actions, interventions and plan to a Rerun "
    "viewer (or to --rrd PATH); none: no viewer."
)
RRD_HELP = "Write the Rerun recording to this .rrd file instead of a viewer (implies rerun)."
