"""Lane supervision: the lane state machine, restart policy, reload plan and environment (pure),
and the processes, health probes and runners that carry them out.
"""
