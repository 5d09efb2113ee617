"""The migrations and the dashboard travel with the package: a wheel installed outside the
repository migrates SQLite and PostgreSQL databases through its own ``zart`` script, and its
``zart serve`` serves the dashboard's page and every asset from the installed copy, with no
other step and no network.

No network: the wheel is built with the build backend already installed here, installed into a
fresh virtual environment without its dependencies, and the dependencies are borrowed from this
interpreter's site-packages through a ``.pth`` file. A ``.pth`` line only puts that directory on
``sys.path``; the ``.pth`` files inside it (among them the editable install of this checkout) are
not processed, so the checkout stays out of reach and the installed copy is what runs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect

from tests.acceptance.test_cli_serve import _free_port
from tests.pg_server import PostgresServer
from tests.processes import Process, until_healthy
from zart.database import create_engine
from zart.migrations import VERSION_TABLE
from zart.models import metadata

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
EXPECTED_TABLES = {*(table.name for table in metadata.sorted_tables), VERSION_TABLE}


def clean_env() -> dict[str, str]:
    """An environment that cannot point Python at this checkout."""
    hidden = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in hidden and not name.startswith("ZART_")
    }
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with an environment that cannot point Python at this checkout."""
    result = subprocess.run(
        command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel of this checkout installed in it."""
    work = tmp_path_factory.mktemp("packaged")
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    offline = ["--no-deps", "--no-index"]
    build = [*pip, "wheel", *offline, "--no-build-isolation", "-w", str(wheels)]
    run([*build, str(REPOSITORY_ROOT)], cwd=work)
    (wheel,) = wheels.glob("zart_durable-*.whl")

    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    python = venv / "bin" / "python"
    run([*pip, "--python", str(python), "install", *offline, str(wheel)], cwd=work)

    new_site = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work
    ).stdout.strip()
    ours = sysconfig.get_paths()
    borrowed = dict.fromkeys([ours["purelib"], ours["platlib"]])  # distinct, in order
    # "zz" sorts last, though order does not matter: the new site-packages precedes any .pth line.
    (Path(new_site) / "zz_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    return venv


def table_names(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_the_installed_package_runs_from_the_new_environment(
    installed_venv: Path, tmp_path: Path
) -> None:
    probe = (
        "import zart, zart.migrations; "
        "print(zart.__file__); print(zart.migrations.script_location())"
    )
    result = run([str(installed_venv / "bin" / "python"), "-c", probe], cwd=tmp_path)

    package_file, script_location = (Path(line) for line in result.stdout.splitlines())
    assert package_file.is_relative_to(installed_venv), package_file
    assert script_location.is_relative_to(installed_venv), script_location
    assert script_location.name == "alembic"
    assert script_location.parent == package_file.parent  # zart/alembic inside the package
    assert (script_location / "env.py").is_file()
    assert list((script_location / "versions").glob("0001_*.py"))


def test_the_installed_script_upgrades_sqlite(installed_venv: Path, tmp_path: Path) -> None:
    zart = str(installed_venv / "bin" / "zart")
    url = "sqlite+aiosqlite:///tmp-x.db"  # relative: lands in the working directory

    run([zart, "db", "upgrade", "--database-url", url], cwd=tmp_path)

    assert table_names(f"sqlite+aiosqlite:///{tmp_path / 'tmp-x.db'}") == EXPECTED_TABLES
    run([zart, "db", "check", "--database-url", url], cwd=tmp_path)


def test_the_installed_script_upgrades_postgresql(
    installed_venv: Path, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    zart = str(installed_venv / "bin" / "zart")
    name = f"{postgres_server.prefix}pkg_{uuid.uuid4().hex[:12]}"  # type: ignore[attr-defined]
    postgres_server.create_database(name)
    try:
        url = postgres_server.url(name)
        assert table_names(url) == set()

        run([zart, "db", "upgrade", "--database-url", url], cwd=tmp_path)

        assert table_names(url) == EXPECTED_TABLES
        run([zart, "db", "check", "--database-url", url], cwd=tmp_path)
    finally:
        postgres_server.drop_database(name)


def test_the_wheel_carries_every_dashboard_asset(installed_venv: Path) -> None:
    (wheel,) = (installed_venv.parent / "wheels").glob("zart_durable-*.whl")
    sources = REPOSITORY_ROOT / "zart" / "api" / "assets"
    expected = {
        f"zart/api/assets/{path.relative_to(sources).as_posix()}"
        for path in sources.rglob("*")
        if path.is_file()
    }
    assert "zart/api/assets/index.html" in expected
    assert "zart/api/assets/views/execution.js" in expected
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.startswith("zart/api/assets/")}
    assert packed == expected


def test_the_installed_zart_serve_serves_the_dashboard(
    installed_venv: Path, tmp_path: Path
) -> None:
    zart = str(installed_venv / "bin" / "zart")
    url = f"sqlite+aiosqlite:///{tmp_path / 'served.db'}"
    run([zart, "db", "upgrade", "--database-url", url], cwd=tmp_path)
    port = _free_port()
    (tmp_path / "packaged_flows.py").write_text(
        "import zart\n\n\n@zart.durable('packaged')\nasync def packaged(data: dict) -> int:\n"
        "    return 1\n"
    )
    arguments = [zart, "serve", "packaged_flows", "--database-url", url, "--port", str(port)]
    env = clean_env()
    env["ZART_API_TOKEN"] = "packaged-token"
    process = Process(arguments, cwd=tmp_path, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        until_healthy(process, base)
        with httpx.Client(base_url=base) as client:
            assert (client.get("/dashboard/app.js")).status_code == 401
            signed = client.post("/dashboard/sign-in", data={"token": "packaged-token"})
            assert signed.status_code == 303, signed.text
            page = client.get("/")
            assert 'src="/dashboard/app.js"' in page.text
            sources = REPOSITORY_ROOT / "zart" / "api" / "assets"
            for name in ("app.js", "app.css", "views/overview.js", "logo.svg"):
                answer = client.get(f"/dashboard/{name}")
                assert answer.status_code == 200, name
                assert answer.content == (sources / name).read_bytes()
    finally:
        process.stop()
