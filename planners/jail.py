"""Operating-system isolation for the sandbox child: bubblewrap namespaces and a seccomp filter.

`jail_command(binds, seccomp_fd)` is the ``bwrap`` command prefix that starts the child, before any
of its code runs, with:

- new user, mount, PID, network, IPC, UTS and cgroup namespaces (``--unshare-all``), uid/gid
  ``nobody`` inside, no capabilities (``--cap-drop ALL``) and no new privileges (bwrap always
  sets ``PR_SET_NO_NEW_PRIVS``); a new session (no terminal to inject input into);
- a private mount view: the system libraries, Python, the packages and the model files,
  read-only; a fresh ``/proc`` that shows only the sandbox's own processes, a minimal read-only
  ``/dev``, and a size-capped tmpfs scratch directory (``/tmp``, also ``$HOME``), the only
  writable place (bwrap's own root and ``/dev`` are tmpfs, remounted read-only so that a program
  cannot fill the host's memory through them); nothing else of the host
  (no home, caches, sockets or other processes' ``/proc``);
- no network of any kind: an empty network namespace (no interfaces but a down loopback, no
  abstract Unix sockets), no file-system sockets mounted, and seccomp refusing ``socket()``;
- the seccomp filter of `seccomp_filter` (``ptrace``, ``setns``, ``unshare``, ``mount``, signals
  to other processes, new processes and more are refused);
- ``--die-with-parent``: the whole PID namespace dies with the caller's child process.

`jail_layers()` reports which layers this host provides and why the others are missing;
`selfsteer.planners.sandbox` refuses untrusted code when one is missing unless the caller opts in.
Resource limits (rlimits) are set by the child itself before it loads any program code.
Linux only: on other systems every layer is missing.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from typing import IO

NOBODY = 65534
SCRATCH = "/tmp"
SCRATCH_BYTES = 64 << 20
CHILD_PID = 2  # bwrap's init is PID 1 in the new PID namespace; the command it starts is PID 2
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")
NAMESPACE_LAYERS = ("user-namespace", "mount-namespace", "pid-namespace", "no-network", "no-capabilities")
LAYERS = (*NAMESPACE_LAYERS, "seccomp", "rlimits")

# Refused with EPERM: escaping or widening the namespaces, reading other processes, kernel state.
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
    "setns", "unshare", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr", "name_to_handle_at", "open_by_handle_at",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "personality",
    "ioperm", "iopl", "mknod", "mknodat", "setuid", "setgid", "setreuid", "setregid", "setresuid",
    "setresgid", "setgroups", "setfsuid", "setfsgid", "sethostname", "setdomainname", "settimeofday",
    "clock_settime", "adjtimex", "clock_adjtime", "fanotify_init", "tkill", "fork", "vfork", "socket",
)


@dataclass(frozen=True)
class JailLayers:
    """Which OS layers this host provides (``present``) and, for the others, why not (``missing``)."""

    present: tuple[str, ...]
    missing: dict[str, str]


def seccomp_filter(child_pid: int = CHILD_PID):
    """The child's system-call filter (a ``pyseccomp.SyscallFilter``; default: allow).

    Refuses `DENIED_SYSCALLS` with EPERM; signals only to the child itself (``kill``,
    ``tgkill``, ``rt_sigqueueinfo`` with its own PID); ``clone`` only for threads (no new
    processes) and ``clone3`` as ENOSYS so the C library falls back to ``clone``. System calls of
    a foreign architecture (e.g. 32-bit ``int 0x80``) kill the process.
    """
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(deny, name)
        except (RuntimeError, ValueError, OSError):  # a call this kernel or architecture lacks
            continue
    for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        f.add_rule(deny, name, sc.Arg(0, sc.NE, child_pid))
    clone_thread = 0x00010000
    f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, clone_thread, 0))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    return f


def seccomp_file() -> IO[bytes]:
    """An open, rewound temporary file holding the compiled BPF program of `seccomp_filter`."""
    out = tempfile.TemporaryFile()
    seccomp_filter().export_bpf(out)
    out.flush()
    out.seek(0)
    return out


def _bind_args(path: str) -> list[str]:
    if os.path.islink(path):
        return ["--symlink", os.readlink(path), path]
    return ["--ro-bind", path, path] if os.path.exists(path) else []


def jail_command(binds: list[str], seccomp_fd: int | None) -> list[str]:
    """The bwrap prefix (see the module docstring); ``binds`` are host paths mounted read-only at
    the same place; ``seccomp_fd`` an inherited descriptor of `seccomp_file` (None: no filter).

    Start it with the child's whole environment as bwrap's own (not the caller's): bwrap's init
    process stays visible in the jail's ``/proc``, environment included."""
    cmd = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
           "--cap-drop", "ALL", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    for path in (*SYSTEM_DIRS, *SYSTEM_FILES):
        cmd += _bind_args(path)
    for path in sorted(set(binds)):
        if os.path.exists(path):
            cmd += ["--ro-bind", path, path]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", str(SCRATCH_BYTES), "--tmpfs", SCRATCH,
            "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SCRATCH]  # only the sized scratch is writable
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    return cmd


@cache
def jail_layers() -> JailLayers:
    """Probe the host once: does bwrap start a fully unshared sandbox, does libseccomp load?"""
    missing: dict[str, str] = {}
    if not sys.platform.startswith("linux"):
        return JailLayers((), {layer: f"needs Linux (this is {sys.platform})" for layer in LAYERS})
    bwrap = shutil.which("bwrap")
    why = None
    if bwrap is None:
        why = "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    else:
        probe = jail_command([], None) + ["true"]
        try:
            run = subprocess.run(probe, capture_output=True, timeout=20, env={"PATH": "/usr/bin:/bin"})
            if run.returncode != 0:
                why = f"bwrap cannot create namespaces here: {run.stderr.decode(errors='replace').strip()[:200]}"
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f"bwrap did not run: {e}"
    if why:
        missing.update({layer: why for layer in NAMESPACE_LAYERS})
    try:
        seccomp_file().close()
    except (ImportError, OSError, RuntimeError, ValueError) as e:
        missing["seccomp"] = f"libseccomp is unavailable ({type(e).__name__}: {e}); pip install pyseccomp and apt-get install libseccomp2"
    if "seccomp" not in missing and why:
        missing["seccomp"] = "the filter is loaded by bwrap, which is missing: " + why
    present = tuple(layer for layer in LAYERS if layer not in missing)
    return JailLayers(present, missing)
