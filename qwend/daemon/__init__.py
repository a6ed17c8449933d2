"""The qwend daemon: wiring, lifecycle (start-up, serve, shutdown), demo mode and systemd
integration.
"""
