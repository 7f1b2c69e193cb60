"""The benchmarks touch only what they made for themselves, even run from a shell with a production
environment exported: a PostgreSQL database of their own (created, then dropped), never the one
DATABASE_URL names, and servers that inherit none of the caller's settings."""

import os
import secrets
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from bench import common
from tests import services


ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def production_database():
    """A database standing in for production's, holding one row that must survive."""
    try:
        psycopg.connect(ADMIN_URL, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        services.require("PostgreSQL", False, f"nothing answers at {ADMIN_URL}: {exc}")
    name = f"avtrz_prod_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        conn.execute("CREATE TABLE customers (name text)")
        conn.execute("INSERT INTO customers VALUES ('Acme')")
    yield url
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def databases() -> set[str]:
    with psycopg.connect(ADMIN_URL) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database")}


def customers(url: str) -> list[str]:
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM customers")]


def test_a_benchmark_works_in_its_own_database_and_its_servers_never_see_production(
    production_database, monkeypatch, tmp_path
):
    monkeypatch.setenv("DATABASE_URL", production_database)
    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", "production-avatars")
    monkeypatch.delenv("BENCH_POSTGRES_URL", raising=False)
    before = databases()
    with common.scratch_database() as url:
        name = url.rsplit("/", 1)[1]
        assert name.startswith("avtrz_bench_") and name not in before
        env = {**common.server_env(str(tmp_path), common.free_port()), "DATABASE_URL": url}
        seen = common.manage(
            env,
            "shell",
            "-c",
            "import os; from django.db import connection; from django.conf import settings; print("
            "connection.settings_dict['NAME'], os.environ.get('AWS_STORAGE_BUCKET_NAME'), settings.AVTRZ_STORAGE)",
        )
    assert seen.splitlines()[-1].split() == [name, "None", "local"]
    # The scratch database is gone and took no other with it. Not a comparison of the whole list: tests
    # running in parallel (and other runs) make and drop databases of their own meanwhile.
    after = databases()
    assert name not in after
    assert {"postgres", "template1", production_database.rsplit("/", 1)[1]} <= after
    assert customers(production_database) == ["Acme"]


@pytest.mark.parametrize(
    ("server", "refusal"),
    [
        ("postgres://postgres@127.0.0.1:5432/{production}", "names the database"),
        ("postgres://postgres@db.example.com:5432", "points at 'db.example.com'"),
    ],
)
def test_the_load_test_refuses_a_database_or_a_remote_server_and_touches_nothing(production_database, server, refusal):
    env = {
        **os.environ,
        "DATABASE_URL": production_database,
        "BENCH_POSTGRES_URL": server.format(production=production_database.rsplit("/", 1)[1]),
    }
    result = subprocess.run(
        [sys.executable, "bench/load.py"], cwd=services.ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "bench: refusing to run" in result.stderr and refusal in result.stderr
    assert customers(production_database) == ["Acme"]


def test_benchmarks_use_redis_on_this_machine_only(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://cache.example.com:6379/0")  # production's, exported: never read
    monkeypatch.delenv("BENCH_REDIS_URL", raising=False)
    assert common.bench_redis_url() == "redis://127.0.0.1:6379/14"
    monkeypatch.setenv("BENCH_REDIS_URL", "redis://cache.example.com:6379/0")
    with pytest.raises(SystemExit, match="BENCH_REDIS_URL points at 'cache.example.com'"):
        common.bench_redis_url()
