"""The OS jail on its own, attacked with full Python inside it (as if the validator and the
restricted builtins had both been bypassed): nothing outside is read, written, connected to,
signalled or spawned. Real bwrap, real seccomp, a real listener on 127.0.0.1, real sentinel files.
Needs Linux with bubblewrap and libseccomp; skipped (with the missing layer named) elsewhere."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from selfsteer.planners.jail import jail_command, jail_layers, seccomp_file
from selfsteer.planners.sandbox import child_env

pytestmark = pytest.mark.skipif(bool(jail_layers().missing), reason=f"jail layers missing: {jail_layers().missing}")
SECRET = "selfsteer-sentinel-4f1c9a"
MARKER = "selfsteer-spawned-7d2e"


def in_jail(code: str, timeout: float = 30) -> dict:
    """Run ``code`` (which sets ``out``, a dict) with full Python in the jail; returns ``out``."""
    script = "import json, os, sys\nout = {}\n" + textwrap.dedent(code) + "\nprint(json.dumps(out))\n"
    with seccomp_file() as bpf:
        cmd = jail_command([sys.prefix, sys.base_prefix], bpf.fileno()) + [sys.executable, "-I", "-c", script]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, pass_fds=(bpf.fileno(),), env=child_env())
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


TRY = """
def attempt(name, fn):
    try:
        out[name] = ["ok", repr(fn())[:200]]
    except BaseException as e:
        out[name] = [type(e).__name__, getattr(e, "errno", None)]
"""


@pytest.fixture
def listener():
    """A real TCP listener on 127.0.0.1 that records every connection it accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_this_host_provides_every_layer():
    assert jail_layers().missing == {}
    assert set(jail_layers().present) >= {"user-namespace", "mount-namespace", "pid-namespace", "no-network", "seccomp"}


def test_files_of_the_host_are_invisible_or_read_only(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    out = in_jail(TRY + f"""
attempt("read sentinel", lambda: open({str(secret)!r}).read())
attempt("read via /proc/self/root", lambda: open("/proc/self/root" + {str(secret)!r}).read())
attempt("read via prefix/..", lambda: open(sys.prefix + "/../../../.." + {str(secret)!r}).read())
attempt("list home", lambda: os.listdir(os.path.expanduser("~root")))
attempt("write packages", lambda: open(os.path.join(sys.base_prefix, "pwned"), "w"))
attempt("write sentinel dir", lambda: open({str(tmp_path / 'pwned')!r}, "w"))
attempt("write scratch", lambda: open("/tmp/scratch", "w").write("ok"))
attempt("etc passwd", lambda: open("/etc/passwd").read())
attempt("write jail root", lambda: open("/filler", "w"))
attempt("write /dev/shm", lambda: open("/dev/shm/filler", "w"))
attempt("fill scratch", lambda: open("/tmp/filler", "wb").write(b"x" * (65 << 20)))
""")
    assert out["read sentinel"] == ["FileNotFoundError", 2]
    assert out["read via /proc/self/root"] == ["FileNotFoundError", 2]
    assert out["read via prefix/.."] == ["FileNotFoundError", 2]
    assert out["list home"][0] in ("FileNotFoundError", "ok") and SECRET not in str(out["list home"])
    assert out["write packages"] == ["OSError", 30]  # EROFS
    assert out["write sentinel dir"] == ["FileNotFoundError", 2]
    assert out["write scratch"] == ["ok", "2"]
    assert out["etc passwd"] == ["FileNotFoundError", 2]
    # the only writable place is the size-capped scratch: tmpfs elsewhere could fill the host's memory
    assert out["write jail root"] == ["OSError", 30] and out["write /dev/shm"] == ["OSError", 30]
    assert out["fill scratch"] == ["OSError", 28]  # ENOSPC at 64 MiB
    assert not (tmp_path / "pwned").exists() and not os.path.exists(os.path.join(sys.base_prefix, "pwned"))


def test_no_other_process_and_no_caller_environment(monkeypatch):
    monkeypatch.setenv("SELFSTEER_TEST_API_KEY", SECRET)
    out = in_jail(TRY + """
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out["environ"] = {p: open(f"/proc/{p}/environ", "rb").read().decode(errors="replace") for p in out["pids"]
                  if os.access(f"/proc/{p}/environ", os.R_OK)}
out["env"] = dict(os.environ)
out["uid"] = [os.getuid(), os.geteuid(), os.getgid()]
out["caps"] = [line for line in open("/proc/self/status") if line.startswith(("CapEff", "CapPrm", "NoNewPrivs", "Seccomp:"))]
""")
    assert out["pids"] == [1, 2]  # bwrap's init and this process: nothing of the host
    assert SECRET not in json.dumps(out)
    assert out["uid"] == [65534, 65534, 65534]
    caps = dict(line.split(":") for line in out["caps"])
    assert caps["CapEff"].strip() == "0" * 16 and caps["CapPrm"].strip() == "0" * 16
    assert caps["NoNewPrivs"].strip() == "1" and caps["Seccomp"].strip() == "2"


def test_no_network_of_any_kind(listener, tmp_path):
    port, accepted = listener
    unix_path = str(tmp_path / "s.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    unix.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0selfsteer-test-abstract")
    abstract.listen()
    out = in_jail(TRY + f"""
import socket
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
attempt("ipv6", lambda: socket.socket(socket.AF_INET6))
attempt("unix path", lambda: socket.socket(socket.AF_UNIX).connect({unix_path!r}))
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW))
attempt("interfaces", lambda: open("/proc/net/dev").read().count(":"))
""")
    for name in ("tcp", "udp", "ipv6", "unix path", "netlink"):
        assert out[name] == ["PermissionError", 1], (name, out[name])
    assert out["interfaces"] == ["ok", "1"]  # only the (down) loopback of an empty namespace
    time.sleep(0.3)
    assert accepted == []
    unix.settimeout(0.1)
    abstract.settimeout(0.1)
    for s in (unix, abstract):
        with pytest.raises(TimeoutError):
            s.accept()
        s.close()


def test_no_new_processes_no_signals_no_namespace_or_debug_calls():
    out = in_jail(TRY + f"""
import ctypes, signal, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def c(fn, *args):
    r = fn(*args)
    return [r, ctypes.get_errno()]
attempt("fork", os.fork)
attempt("subprocess", lambda: subprocess.Popen(["/bin/sleep", "30", "{MARKER}"], start_new_session=True))
attempt("system", lambda: os.system("touch /tmp/ran; sleep 30 # {MARKER}"))
out["shell ran"] = os.path.exists("/tmp/ran")
attempt("posix_spawn", lambda: os.posix_spawn("/bin/sleep", ["sleep", "30", "{MARKER}"], {{}}))
attempt("kill init", lambda: os.kill(1, signal.SIGKILL))
attempt("kill all", lambda: os.kill(-1, signal.SIGKILL))
attempt("kill self 0", lambda: os.kill(os.getpid(), 0))
out["ptrace"] = c(libc.ptrace, 0, 0, 0, 0)
out["unshare"] = c(libc.unshare, 0x10000000)
out["setns"] = c(libc.setns, os.open("/proc/self/ns/net", os.O_RDONLY), 0)
out["mount"] = c(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None)
out["setuid"] = c(libc.setuid, 0)
out["thread"] = __import__("threading").Thread(target=lambda: None).start() is None
""")
    for name in ("fork", "subprocess", "posix_spawn"):
        assert out[name] == ["PermissionError", 1], (name, out[name])
    assert out["system"] == ["ok", str(127 << 8)] and out["shell ran"] is False  # glibc: the spawn failed
    assert out["kill init"] == ["PermissionError", 1] and out["kill all"] == ["PermissionError", 1]
    assert out["kill self 0"] == ["ok", "None"]
    for name in ("ptrace", "unshare", "setns", "mount", "setuid"):
        assert out[name] == [-1, 1], (name, out[name])  # EPERM from the seccomp filter
    assert out["thread"] is True  # threads (the engine's) still work
    spawned = [p for p in os.listdir("/proc") if p.isdigit() and MARKER in _cmdline(p)]
    assert spawned == []


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""
