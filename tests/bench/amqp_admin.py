"""Small RabbitMQ chores of `make bench`, with Debian's py-amqp (a
dependency of python3-celery); run with /usr/bin/python3.

    amqp_admin.py URL sink NS QUEUE   declare <NS>.jobs.<QUEUE> as bashexec's
                                      workers would (durable, priority 0..9,
                                      dead-letters to <NS>.dlx), bound to
                                      <NS>.jobs; no worker consumes it
    amqp_admin.py URL depth NAME      messages ready in queue NAME
    amqp_admin.py URL delete NAME...  delete these queues
"""
import sys
import urllib.parse as u

import amqp


def connect(url):
    p = u.urlsplit(url)
    conn = amqp.Connection(host="%s:%d" % (p.hostname or "127.0.0.1", p.port or 5672),
                           userid=u.unquote(p.username or "guest"),
                           password=u.unquote(p.password or "guest"),
                           virtual_host=u.unquote(p.path[1:]) or "/")
    conn.connect()
    return conn


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    url, cmd, args = argv[0], argv[1], argv[2:]
    conn = connect(url)
    ch = conn.channel()
    if cmd == "sink" and len(args) == 2:
        ns, queue = args
        ch.exchange_declare(ns + ".jobs", "direct", durable=True, auto_delete=False)
        ch.exchange_declare(ns + ".dlx", "fanout", durable=True, auto_delete=False)
        name = "%s.jobs.%s" % (ns, queue)
        ch.queue_declare(name, durable=True, auto_delete=False,
                         arguments={"x-dead-letter-exchange": ns + ".dlx", "x-max-priority": 9})
        ch.queue_bind(name, ns + ".jobs", routing_key=queue)
        print(name)
    elif cmd == "depth" and len(args) == 1:
        _, count, _ = ch.queue_declare(args[0], passive=True)
        print(count)
    elif cmd == "delete":
        for name in args:
            ch.queue_delete(name)
    else:
        raise SystemExit(__doc__)
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
