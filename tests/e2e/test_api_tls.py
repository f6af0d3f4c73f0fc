"""TLS for the API (issue 5): with BX_TLS_CERT and BX_TLS_KEY the API
answers https only, bx verifies it with --cacert / BX_CA_FILE, and a key
file other users may read is refused (world) or warned about (group)."""

import os
import socket
import subprocess
import sys
import tempfile
import time

from harness import ROOT, Stack

BIN = os.environ.get("BX_BIN_DIR") or os.path.join(ROOT, "bin")


def make_cert(d, name="api"):
    cert, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def api_alone(env, seconds):
    """Runs bx-api alone for at most seconds: (exit code or None, its log)."""
    p = subprocess.Popen([os.path.join(BIN, "bx-api")], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=seconds)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        p.terminate()
        out, _ = p.communicate(timeout=20)
        return None, out


def bx(s, *args, env=None):
    e = dict(s.env)
    e.update(env or {})
    return subprocess.run([os.path.join(BIN, "bx")] + list(args), env=e, capture_output=True,
                          text=True, timeout=60)


def check_key_modes(s, cert, key):
    env = dict(s.env, BX_API_LISTEN="127.0.0.1:0", BX_NAMESPACE=s.namespace + "_k",
               BX_TLS_CERT=cert, BX_TLS_KEY=key)
    os.chmod(key, 0o644)
    rc, out = api_alone(env, 20)
    assert rc not in (None, 0) and "readable by every user" in out, (rc, out)
    os.chmod(key, 0o640)
    rc, out = api_alone(env, 3)
    assert rc is None and "event=tls_key_group_readable" in out and "event=api_started" in out, (rc, out)
    os.chmod(key, 0o600)
    rc, out = api_alone(dict(env, BX_TLS_KEY=""), 20)
    assert rc not in (None, 0) and "BX_TLS_KEY is not" in out, (rc, out)
    not_key = key + ".not"  # a certificate is no key
    with open(cert) as src, open(not_key, "w") as dst:
        dst.write(src.read())
    os.chmod(not_key, 0o600)
    rc, out = api_alone(dict(env, BX_TLS_KEY=not_key), 20)
    assert rc not in (None, 0) and "TLS certificate and key" in out, (rc, out)


def main():
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        other_cert, _ = make_cert(d, "other")
        with Stack(workers=1, env={"BX_TLS_CERT": cert, "BX_TLS_KEY": key}) as s:
            assert s.url.startswith("https://"), s.url
            status, body = s.request("GET", "/healthz", auth=False)
            assert status == 200, (status, body)
            done = s.wait(s.submit({"command": "echo over tls"})["id"], timeout=30)
            assert done["state"] == "succeeded" and done["stdout"] == "over tls\n", done

            # plain http gets no answer: the handshake fails and the connection closes
            host, port = s.listen.rsplit(":", 1)
            c = socket.create_connection((host, int(port)), timeout=10)
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                got = c.recv(4096)
            except ConnectionResetError:
                got = b""
            c.close()
            assert not got.startswith(b"HTTP/"), got
            r = subprocess.run(["curl", "-sS", "--max-time", "5", "http://%s/healthz" % s.listen],
                               capture_output=True, text=True)
            assert r.returncode != 0, r
            status, _ = s.request("GET", "/healthz", auth=False)  # still serving
            assert status == 200

            # bx: --cacert, BX_CA_FILE; without them the self-signed certificate is refused
            r = bx(s, "--cacert", cert, "submit", "--wait", "echo via bx")
            assert r.returncode == 0 and r.stdout == "via bx\n", r
            r = bx(s, "workers", env={"BX_CA_FILE": cert})
            assert r.returncode == 0 and "default" in r.stdout, r
            r = bx(s, "workers")
            assert r.returncode == 2 and "certificate" in r.stderr.lower(), r
            r = bx(s, "--cacert", other_cert, "workers")
            assert r.returncode == 2 and "certificate" in r.stderr.lower(), r
            r = bx(s, "--api-url", "http://" + s.listen, "workers")
            assert r.returncode == 2, r

            check_key_modes(s, cert, key)
            print("ok api tls", file=sys.stderr)


if __name__ == "__main__":
    main()
