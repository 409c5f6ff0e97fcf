"""The perception-to-action runtime: robot interface and adapters, controller loop, action-chunk
execution and the safety filter that every action passes through."""
