"""Real daemons driven on loopback under a shared fake clock, for bench/daemon_logs.py.

system     installing packages, the shared clock, starting/stopping processes, rsyslog, logrotate
hosts      one class per simulated server: its daemons' configs, start, and the events it causes
questions  pure parts: timestamps as each format writes them, finding lines, building questions
"""
