"""The services' secrets never reach their logs (issue 5): a stack whose
BX_AMQP_URL spells out its password runs a job without the password in any
log, and the error paths that quote or follow a URL (a malformed URL, a
server that is down, refused credentials) name the URL without them."""

import os
import subprocess
import sys
import urllib.parse

from harness import ROOT, Stack

BIN = os.environ.get("BX_BIN_DIR") or os.path.join(ROOT, "bin")


def hostport(url, port):
    u = urllib.parse.urlsplit(url)
    return "%s:%d" % (u.hostname or "127.0.0.1", u.port or port)


def run_alone(prog, env, seconds):
    """prog's output over at most seconds (it is stopped then)."""
    p = subprocess.Popen([os.path.join(BIN, prog)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        p.terminate()
        out, _ = p.communicate(timeout=30)
    return out


def main():
    amqp = hostport(os.environ.get("BX_AMQP_URL", "amqp://127.0.0.1:5672/"), 5672)
    redis = hostport(os.environ.get("BX_REDIS_URL", "redis://127.0.0.1:6379/0"), 6379)
    mongo = hostport(os.environ.get("BX_MONGO_URL", "mongodb://127.0.0.1:27017/"), 27017)
    # RabbitMQ's own guest:guest, the password spelled out in the URL
    url = "amqp://guest:guest@%s/" % amqp
    with Stack(workers=1, env={"BX_AMQP_URL": url}) as s:
        done = s.wait(s.submit({"command": "echo fine"})["id"], timeout=30)
        assert done["state"] == "succeeded", done
        base = dict(s.env, BX_API_LISTEN="127.0.0.1:0", BX_METRICS_LISTEN="",
                    BX_NAMESPACE=s.namespace + "_x")
        cases = [
            # (program, setting, value, password, what its log must say)
            ("bx-api", "BX_REDIS_URL", "redis:/:pw-redis-1@%s/0" % redis, "pw-redis-1", "redis://"),
            ("bx-api", "BX_REDIS_URL", "redis://:pw-redis-2@", "pw-redis-2", "lacks a host"),
            ("bx-worker", "BX_AMQP_URL", "amqp://guest:pw-amqp-3@127.0.0.1:1/", "pw-amqp-3", "127.0.0.1:1"),
            ("bx-worker", "BX_AMQP_URL", "amqp://guest:pw-amqp-4@%s/" % amqp, "pw-amqp-4", "login"),
            ("bx-worker", "BX_AMQP_URL", "amqp://guest:pw-amqp-5@", "pw-amqp-5", "login"),  # localhost
            ("bx-worker", "BX_REDIS_URL", "redis://:pw-redis-6@%s/0" % redis, "pw-redis-6", "AUTH"),
            ("bx-recorder", "BX_MONGO_URL", "mongodb://u:pw-mongo-7@127.0.0.1:1/", "pw-mongo-7", "mongo"),
            ("bx-recorder", "BX_MONGO_URL", "mongodb://u:pw-mongo-8@/", "pw-mongo-8", "MongoDB url"),
        ]
        for prog, key, value, password, says in cases:
            out = run_alone(prog, dict(base, **{key: value}), 6)
            assert says.lower() in out.lower(), (prog, key, value, out[-3000:])
            assert password not in out, (prog, key, value, out[-3000:])
        logs = os.path.join(s.run_dir, "logs")
        for name in os.listdir(logs):
            if not name.startswith("bx-"):
                continue  # the services' own logs, when the stack started any
            with open(os.path.join(logs, name), errors="replace") as f:
                text = f.read()
            assert "guest" not in text, (name, [l for l in text.splitlines() if "guest" in l][:5])
        print("ok secrets stay out of the logs (%d error paths)" % len(cases), file=sys.stderr)


if __name__ == "__main__":
    main()
