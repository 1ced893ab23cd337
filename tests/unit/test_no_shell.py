"""No module of ours runs a shell or a command string."""

from __future__ import annotations

import ast
from pathlib import Path


SRC = Path(__file__).resolve().parents[2] / "src" / "poetry_torch_cuda"


# -- nothing reaches a shell ------------------------------------------------


def _shell_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        if func in ("os.system", "os.popen", "subprocess.getoutput"):
            found.append(func)
        if func.startswith(("subprocess.", "os.spawn", "os.exec")):
            if any(kw.arg == "shell" for kw in node.keywords):
                found.append(f"{func}(shell=...)")
            first = node.args[0] if node.args else None
            if isinstance(first, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                found.append(f"{func}(<string command>)")
    return found


def test_no_module_runs_a_shell_or_a_command_string() -> None:
    offenders = {
        str(path.relative_to(SRC)): uses
        for path in sorted(SRC.rglob("*.py"))
        if (uses := _shell_uses(ast.parse(path.read_text())))
    }
    assert offenders == {}


def test_the_shell_check_catches_what_it_should() -> None:
    code = "import os, subprocess\nos.system('x')\nsubprocess.run('ls', shell=True)\n"
    assert _shell_uses(ast.parse(code)) == [
        "os.system",
        "subprocess.run(shell=...)",
        "subprocess.run(<string command>)",
    ]


# -- masking -----------------------------------------------------------------
