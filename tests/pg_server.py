"""A throwaway PostgreSQL server for the test suite.

``start_postgres()`` runs ``initdb`` and ``pg_ctl`` to bring up a private, non-durable server on a
free loopback port; ``connect_existing()`` wraps a server someone else runs (for instance one
named by ``ZART_TEST_DATABASE_URL``). Both return a ``PostgresServer`` whose methods are
synchronous, because they are called from synchronous pytest session fixtures.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import URL, make_url

__all__ = ["PostgresServer", "connect_existing", "start_postgres"]

_BINARIES = ("initdb", "pg_ctl", "postgres")
_SERVER_USER = "postgres"
_HOST = "127.0.0.1"
_LOG_TAIL_LINES = 40
_START_ATTEMPTS = 3

_SETTINGS = {
    "listen_addresses": _HOST,
    "max_connections": "200",
}

# Switched off for the test suite (speed); left at PostgreSQL's defaults with durable=True.
_NON_DURABLE_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: compare "9.6" < "15" numerically, not as strings.
    parts = re.findall(r"\d+", path.parent.name)
    return tuple(int(part) for part in parts)


def _find_bindir() -> Path:
    found = [shutil.which(name) for name in _BINARIES]
    if all(found):
        # pg_ctl launches the postgres that sits next to it, so use pg_ctl's real directory
        # (PATH entries are often symlinks into /usr/lib/postgresql/<version>/bin).
        bindir = Path(str(found[1])).resolve().parent
        if all((bindir / name).is_file() for name in _BINARIES):
            return bindir
    candidates = [
        bindir
        for bindir in Path("/usr/lib/postgresql").glob("*/bin")
        if all((bindir / name).is_file() for name in _BINARIES)
    ]
    if candidates:
        return max(candidates, key=_version_key)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or under "
        "/usr/lib/postgresql/*/bin. Install them (e.g. `apt-get install postgresql`) or set "
        "ZART_TEST_DATABASE_URL to a SQLAlchemy URL of an existing server, e.g. "
        "postgresql+asyncpg://user:password@host:5432/postgres."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _conf_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _log_tail(log_file: Path) -> str:
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(could not read {log_file}: {exc})"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


class _Cluster:
    """The on-disk cluster and server process behind a server started by ``start_postgres``."""

    def __init__(
        self,
        bindir: Path,
        base_dir: Path,
        run_as: pwd.struct_passwd | None,
        *,
        durable: bool = False,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.bindir = bindir
        self.durable = durable
        self.settings = dict(settings or {})
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "socket"
        self.log_file = base_dir / "postgresql.log"
        self.run_as = run_as

    def command(self, binary: str, *args: str) -> list[str]:
        argv = [str(self.bindir / binary), *args]
        if self.run_as is None:
            return argv
        runuser = shutil.which("runuser")
        if runuser is not None:
            return [runuser, "-u", self.run_as.pw_name, "--", *argv]
        su = shutil.which("su") or "su"
        return [su, self.run_as.pw_name, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def run(
        self, binary: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        # cwd is the base dir because the server user may not be allowed into the caller's cwd.
        return subprocess.run(
            self.command(binary, *args),
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def own(self, path: Path) -> None:
        if self.run_as is not None:
            os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)

    def initdb(self) -> None:
        self.socket_dir.mkdir(mode=0o700)
        self.own(self.socket_dir)
        result = self.run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            _SERVER_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed with exit code {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        settings = {**_SETTINGS, "unix_socket_directories": str(self.socket_dir)}
        if not self.durable:
            settings.update(_NON_DURABLE_SETTINGS)
        settings.update(self.settings)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# throwaway test server (zart tests/pg_server.py)\n")
            for name, value in settings.items():
                conf.write(f"{name} = {_conf_value(value)}\n")

    def start(self) -> int:
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            result = self.run(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                f"-p {port}",
            )
            if result.returncode == 0:
                return port
            log = _log_tail(self.log_file)
            # The port was free when picked but another process may have taken it since.
            if attempt < _START_ATTEMPTS and "already in use" in log:
                continue
            raise RuntimeError(
                f"pg_ctl start failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n"
                f"--- end of the server log ---\n{log}"
            )
        raise AssertionError("unreachable")

    def restart(self, mode: str, port: int) -> None:
        # -l again: without it the new server would write to pg_ctl's stdout, a pipe held
        # open for as long as the server runs.
        result = self.run(
            "pg_ctl",
            "restart",
            "-w",
            "-t",
            "60",
            "-m",
            mode,
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            f"-p {port}",
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl restart -m {mode} failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n"
                f"--- end of the server log ---\n{_log_tail(self.log_file)}"
            )

    def halt(self) -> None:
        """Stop the server, keeping its files, to start it again with :meth:`resume`."""
        result = self.run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir))
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {result.stdout}{result.stderr}")

    def resume(self, port: int) -> None:
        result = self.run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
            "-l", str(self.log_file), "-o", f"-p {port}",
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start on port {port} failed: {result.stdout}{result.stderr}\n"
                f"--- end of the server log ---\n{_log_tail(self.log_file)}"
            )

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.run(
                "pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data_dir), timeout=60
            )
        shutil.rmtree(self.base_dir, ignore_errors=True)


class PostgresServer:
    """A PostgreSQL server reachable over TCP, with helpers to create and drop databases."""

    host: str
    port: int
    user: str

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str | None = None,
        *,
        _cluster: _Cluster | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self._password = password
        self._cluster = _cluster
        # A forked child inherits the atexit hook; only the process that started it may stop it.
        self._owner_pid = os.getpid()
        if _cluster is not None:
            atexit.register(self.stop)

    def __repr__(self) -> str:
        owned = "throwaway" if self._cluster is not None else "existing"
        return f"<PostgresServer {owned} {self.user}@{self.host}:{self.port}>"

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        """Return a SQLAlchemy URL for ``database`` on this server, password included."""
        return URL.create(
            drivername=driver,
            username=self.user,
            password=self._password,
            host=self.host,
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def create_database(self, name: str, template: str | None = None) -> None:
        """Create database ``name``, optionally as a copy of the database ``template``.

        A template must have no other open connections while it is copied.
        """
        statement = f"CREATE DATABASE {_quote_ident(name)}"
        if template is not None:
            statement += f" TEMPLATE {_quote_ident(template)}"
        self._execute([statement])

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, terminating any connections to it first."""
        asyncio.run(self._drop_database(name))

    @property
    def restartable(self) -> bool:
        """Whether :meth:`restart` can restart it (a server ``start_postgres`` started)."""
        return self._cluster is not None

    def restart(self, mode: str = "fast") -> None:
        """Restart a server started by ``start_postgres`` on the same port, the way an
        operator or a failover does: ``pg_ctl restart -m fast`` (clients are disconnected,
        a clean shutdown) or ``-m immediate`` (the server is killed and recovers from its
        WAL at the next start). Returns once the new server accepts connections."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown shutdown mode {mode!r}: smart, fast or immediate")
        if self._cluster is None:
            raise RuntimeError(f"{self!r} was not started by start_postgres: cannot restart it")
        self._cluster.restart(mode, self.port)

    def down(self) -> None:
        """Shut a server started by ``start_postgres`` down (clients cut off, nothing
        listening on its port) until :meth:`up` starts it again on the same port."""
        if self._cluster is None:
            raise RuntimeError(f"{self!r} was not started by start_postgres: cannot stop it")
        self._cluster.halt()

    def up(self) -> None:
        """Start a server :meth:`down` stopped, on its port; returns once it accepts
        connections."""
        if self._cluster is None:
            raise RuntimeError(f"{self!r} was not started by start_postgres: cannot start it")
        self._cluster.resume(self.port)

    def stop(self) -> None:
        """Stop a server started by ``start_postgres`` and delete its files.

        Does nothing for a server given to ``connect_existing``, and nothing the second time.
        """
        cluster, self._cluster = self._cluster, None
        if cluster is None or os.getpid() != self._owner_pid:
            return
        atexit.unregister(self.stop)
        cluster.stop()

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self._password,
            database="postgres",
        )

    def _execute(self, statements: Sequence[str]) -> None:
        async def run() -> None:
            conn = await self._connect()
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(run())

    async def _drop_database(self, name: str) -> None:
        conn = await self._connect()
        try:
            if conn.get_server_version().major >= 13:
                await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
                return
            # Before PostgreSQL 13 there is no FORCE: block new connections, end existing ones.
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                return
            await conn.execute(f"ALTER DATABASE {_quote_ident(name)} ALLOW_CONNECTIONS false")
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}")
        finally:
            await conn.close()


def start_postgres(
    durable: bool = False, settings: Mapping[str, str] | None = None
) -> PostgresServer:
    """Start a throwaway PostgreSQL server on a free 127.0.0.1 port and return it.

    The cluster lives in a fresh temporary directory, runs with durability switched off (fsync,
    synchronous_commit and full_page_writes off) unless ``durable`` is true — then they keep
    PostgreSQL's production defaults, as the benchmarks want — and trusts every local
    connection as superuser ``postgres``. ``settings`` (``postgresql.conf`` names and values)
    come last and win. When the current process is root,
    the server runs as the ``postgres`` OS user because PostgreSQL refuses to run as root.
    Call ``stop()`` when done; an ``atexit`` hook stops it otherwise.
    """
    bindir = _find_bindir()
    run_as: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam(_SERVER_USER)
        except KeyError:
            raise RuntimeError(
                f"Running as root, but there is no {_SERVER_USER!r} OS user to run PostgreSQL as "
                "(PostgreSQL refuses to run as root). Create one, run the tests as a non-root "
                "user, or set ZART_TEST_DATABASE_URL."
            ) from None
    # As root, TMPDIR may point somewhere the server user cannot enter; /tmp is always reachable.
    base_dir = Path(tempfile.mkdtemp(prefix="zart-pg-", dir="/tmp" if run_as else None))
    cluster = _Cluster(bindir, base_dir, run_as, durable=durable, settings=settings)
    try:
        cluster.own(base_dir)
        cluster.initdb()
        port = cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return PostgresServer(_HOST, port, _SERVER_USER, _cluster=cluster)


def connect_existing(url: str) -> PostgresServer:
    """Wrap an existing server given by a SQLAlchemy URL such as
    ``postgresql+asyncpg://user:password@host:5432/postgres``.

    Only the user, password, host and port are used; ``stop()`` leaves the server alone.
    """
    parsed = make_url(url)
    return PostgresServer(
        host=parsed.host or "localhost",
        port=parsed.port or 5432,
        user=parsed.username or _SERVER_USER,
        password=parsed.password,
    )
