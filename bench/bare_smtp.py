"""C5's baseline: ``python -m bench.bare_smtp PORT COUNT`` sends COUNT prepared emails (about
the size of a notification, a fresh Message-ID and recipient each) over one ``smtplib``
connection, and prints the rate. No Django: what one process does when it does nothing else."""

import smtplib
import sys
import time

TEMPLATE = (
    b"From: itsm <noreply@itsm.localhost>\r\nTo: {to}\r\nSubject: [INC-1] Investigating\r\n"
    b"Message-ID: <baseline.{n}@bench>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    + b"We are investigating failed payments.\r\n"
    * 100
)


def main(port, count):
    smtp = smtplib.SMTP("127.0.0.1", port)
    started = time.perf_counter()
    for n in range(count):
        to = b"baseline%d@customer.example.com" % n
        body = TEMPLATE.replace(b"{to}", to).replace(b"{n}", b"%d" % n)
        smtp.sendmail("noreply@itsm.localhost", [to.decode()], body)
    rate = count / (time.perf_counter() - started)
    smtp.quit()
    print(rate)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
