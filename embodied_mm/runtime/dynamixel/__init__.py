"""Dynamixel arms: Protocol 2.0 framing, arm profiles, calibration, and a motor-bus emulator."""
