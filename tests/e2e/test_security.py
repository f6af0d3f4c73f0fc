"""What a command can reach (issue 5): a root worker runs it as nobody, in a
private directory removed afterwards, without the worker's descriptors,
environment secrets or files, under resource limits."""

import os
import re
import sys

from harness import Stack


def run(s, job):
    done = s.wait(s.submit(job)["id"], timeout=30)
    assert done["state"] == "succeeded", done
    return done["stdout"]


def main():
    if os.geteuid() != 0:
        print("SKIP: the worker drops privileges only when it runs as root", file=sys.stderr)
        return
    secret = "s3cret-%d" % os.getpid()
    with Stack(workers=1, env={"BX_RUN_AS": "nobody", "BX_TEST_SECRET": secret}) as s:
        out = run(s, {"command": "id -u; id -G"}).split("\n")
        assert out[0] != "0" and out[0] == str(65534), out
        assert "0" not in out[1].split(), out

        out = run(s, {"command": "cat %s/api-tokens %s/api-token 2>&1; echo rc=$?" % (s.run_dir, s.run_dir)})
        assert s.token not in out and "rc=1" in out, out

        out = run(s, {"command": "env; cat /proc/$PPID/environ 2>&1 | tr '\\0' '\\n'"})
        assert secret not in out and "BX_AMQP_URL" not in out and "BX_REDIS_URL" not in out, out

        # ls's own directory handle is the 3
        out = run(s, {"command": "ls /proc/self/fd"})
        assert out.split() == ["0", "1", "2", "3"], out

        out = run(s, {"command": "pwd; echo x > f; ls -ld .; ls .. >/dev/null 2>&1; echo ls_parent=$?"})
        cwd = out.split("\n")[0]
        assert re.match(r"^/tmp/bx-w-\d+-\d+@[^/]+/bx-job-[^/]+$", cwd) and "nobody" in out, out
        assert not os.path.exists(cwd), "private dir %s left behind" % cwd
        # the worker's directory: reachable, not listable (the other jobs' names)
        assert "ls_parent=2" in out, out

        out = run(s, {"command": "ulimit -n; ulimit -t", "limits": {"nofile": 64, "cpu_s": 5}})
        assert out.split() == ["64", "5"], out
        status, body = s.request("POST", "/v1/jobs", {"command": "true", "limits": {"memory": 1}})
        assert status == 400 and "memory" in body["error"]["message"], (status, body)
        print("ok security", file=sys.stderr)


if __name__ == "__main__":
    main()
