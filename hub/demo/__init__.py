"""The demo: a private Prosody, the hub with its embedded broker, simulated devices."""
