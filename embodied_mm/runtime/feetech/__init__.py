"""Feetech STS-series servos (STS3215: SO-100/SO-101 arms): bus, emulator, calibration."""
