"""Real daemons driven on loopback under a shared fake clock, for bench/daemon_logs.py.

system     installing packages, the shared clock, starting/stopping processes, rsyslog, logrotate
base       a simulated server (rsyslogd, sshd, sudo), unique markers, loopback clients
mail       mx1: postfix, dovecot
web        web1: nginx, haproxy; web2: apache2, lighttpd
infra      ftp1: vsftpd; db1: mariadb, postgresql; ns1: unbound, squid, mosquitto
questions  pure parts: timestamps as each format writes them, finding lines, building questions
"""
