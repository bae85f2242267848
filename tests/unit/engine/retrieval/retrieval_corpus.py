"""Small generated log corpora for the retrieval tests."""

JAVA = """2024-06-21 16:47:46,001 INFO  [main] com.acme.Web - GET /orders 200 from 10.0.0.7 user=bob
2024-06-21 16:47:47,002 INFO  [main] com.acme.Web - GET /orders 200 from 10.0.0.8 user=carol
2024-06-21 16:47:48,123 ERROR [pool-1] com.acme.OrderService - failed to place order 7f3c2a1e-1111-4222-8333-944445555666
java.lang.IllegalStateException: order store unavailable
\tat com.acme.OrderService.place(OrderService.java:42)
\tat com.acme.Web.handle(Web.java:17)
Caused by: java.sql.SQLException: ORA-00942: table or view does not exist
\tat oracle.jdbc.Driver.exec(Driver.java:99)
\t... 3 more
2024-06-21 16:47:49,001 INFO  [main] com.acme.Web - GET /orders 200 from 10.0.0.9 user=dave
2024-06-21 16:47:50,001 WARN  [pool-2] com.acme.Pool - pool almost exhausted on db-01.example.com
"""

PYTHON = """2024-06-21 10:00:01,000 - app.sync - INFO - sync started for tenant acme
2024-06-21 10:02:30,500 - app.sync - ERROR - upload of report.csv failed
Traceback (most recent call last):
  File "/srv/app/sync.py", line 88, in upload
    client.put(path)
ConnectionResetError: [Errno 104] Connection reset by peer
2024-06-21 10:04:00,000 - app.sync - WARNING - retrying in 30 s (E1234)
2024-06-21 10:30:00,000 - app.sync - INFO - sync finished
"""

SYSLOG = """Jun 21 09:15:01 web-01 sshd[2201]: Accepted publickey for alice from 192.168.1.50 port 51234 ssh2
Jun 21 09:15:07 web-01 sshd[2204]: Failed password for invalid user admin from 203.0.113.9 port 40022 ssh2
Jun 21 09:16:00 web-01 CRON[2300]: (root) CMD (run-parts /etc/cron.hourly)
"""


def access_lines(n: int, start: int = 0) -> str:
    return "".join(
        f'10.1.{i // 250}.{i % 250 + 1} - - [21/Jun/2024:11:{(i // 60) % 60:02d}:{i % 60:02d} +0000] '
        f'"GET /api/items/{i} HTTP/1.1" {500 if i % 97 == 0 else 200} {100 + i}\n'
        for i in range(start, start + n))
