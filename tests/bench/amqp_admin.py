"""Small RabbitMQ chores of `make bench`, with Debian's py-amqp (a
dependency of python3-celery); run with /usr/bin/python3.

    amqp_admin.py URL depth NAME      messages ready in queue NAME
    amqp_admin.py URL purge NAME...   empty these queues
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
    if cmd == "depth" and len(args) == 1:
        _, count, _ = ch.queue_declare(args[0], passive=True)
        print(count)
    elif cmd == "purge":
        for name in args:
            ch.queue_purge(name)
    elif cmd == "delete":
        for name in args:
            ch.queue_delete(name)
    else:
        raise SystemExit(__doc__)
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
