"""Running the real `ticketing` console script against a test's database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

TICKETING = Path(sys.executable).with_name("ticketing")


@pytest.fixture
def cli_env(database_url: str, var_dir: Path) -> dict[str, str]:
    """The environment a command runs in: this test's database and var directory, nothing else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env.update(TICKETING_DATABASE_URL=database_url, TICKETING_VAR_DIR=str(var_dir))
    return env


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path):
    """`await cli(*args)`: run `ticketing args…` (str or raw bytes) in a clean directory."""

    async def run(*args: str | bytes, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        process = await asyncio.create_subprocess_exec(
            str(TICKETING), *args, env=env or cli_env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        return subprocess.CompletedProcess(args, process.returncode, stdout.decode(), stderr.decode())

    return run
