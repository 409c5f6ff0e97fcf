"""Deployment: the policy server (websocket + msgpack, openpi's wire protocol) and its client."""
