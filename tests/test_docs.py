"""Keeps the documentation (README.md and docs/*.md) from rotting silently.

- Every ``labcam ...`` command shown (in shell code blocks and in inline code, including
  ``scripts/serve.sh ...``, which passes its arguments to ``labcam serve``) is parsed by the real
  command line parser, and its flags are checked against the installed ``labcam`` command's
  ``--help``.
- docs/configuration.md documents every ``labcam serve`` option and every configurable trait of the
  Jupyter extension (``LabcamApp``), with the real defaults; every ``LabcamApp.x`` mentioned anywhere
  exists, and ``--LabcamApp.x=value`` on a command line is a valid value; the Jupyter settings named
  (``ServerApp.allow_origin``...) exist.
- Every relative link resolves, anchors included (GitHub's heading slugs).
- Every fenced ``python`` block runs, against the simulated camera (``labcam.open()`` is made to
  pick the simulator; ``localhost:8001`` is a ``labcam serve --camera simulated`` started for the
  test). A page's blocks run in order in one namespace, as a reader would run them. A block that
  cannot run here says so on a line ``# doc: skip-run (why)``.
- Scripts and npm scripts named in commands exist.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGURATION = ROOT / "docs" / "configuration.md"
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
PYTHON_LANGS = {"python", "py", "python3"}
SKIP_RUN = "doc: skip-run"
RUN_TIMEOUT_S = 120


# -- reading markdown ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def split_markdown(path: Path) -> tuple[list[Block], str]:
    """The fenced code blocks of a file, and its prose (the file with code blocks blanked out)."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) and not close["info"].strip():
                break
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        i += 1  # the closing fence
        lang = info.split()[0].lower() if info else ""
        blocks.append(Block(path, start + 1, lang, info, "\n".join(body) + "\n"))
        prose.extend([""] * (i - start))
    return blocks, "\n".join(prose)


_DOCS = {path: split_markdown(path) for path in DOC_FILES}


def all_blocks() -> Iterator[Block]:
    for blocks, _ in _DOCS.values():
        yield from blocks


def inline_code(prose: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"(?<!`)`([^`\n]+)`(?!`)", prose)]


def test_the_docs_exist() -> None:
    names = {p.name for p in DOC_FILES}
    for required in ("setup.md", "architecture.md", "protocol.md", "configuration.md", "tuning.md", "troubleshooting.md"):
        assert required in names, f"docs/{required} is missing"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for p in DOC_FILES[1:]:
        assert f"docs/{p.name}" in readme, f"README.md does not link docs/{p.name}"


# -- commands ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    where: str
    argv: tuple[str, ...]  # after the program name
    program: str  # "labcam", "jupyter", "npm", a script path...
    text: str


def _simple_commands(text: str) -> list[list[str]]:
    """Split shell text into simple commands (on ;, &&, ||, |, newlines); comments dropped."""
    text = text.replace("\\\n", " ")
    out: list[list[str]] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*\$\s+", "", line)
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        lex.commenters = "#"
        current: list[str] = []
        try:
            tokens = list(lex)
        except ValueError:  # unbalanced quotes: prose, not a command
            continue
        for tok in tokens:
            if tok and set(tok) <= set(";&|"):
                if current:
                    out.append(current)
                current = []
            else:
                current.append(tok)
        if current:
            out.append(current)
    return out


def _command(where: str, words: list[str], text: str) -> Command | None:
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):  # VAR=value prefixes
        words = words[1:]
    if words and words[0] in ("exec", "sudo", "time"):
        words = words[1:]
    if not words:
        return None
    prog = words[0]
    base = prog.rsplit("/", 1)[-1]
    if base == "labcam":
        return Command(where, tuple(words[1:]), "labcam", text)
    if prog.endswith("scripts/serve.sh"):  # passes its arguments on to `labcam serve`
        return Command(where, ("serve", *words[1:]), "labcam", text)
    if base in ("jupyter", "npm", "conda", "pip", "python", "python3", "curl", "ss", "cd") or prog.startswith(("scripts/", "./scripts/", ".venv/", "frontend/")):
        return Command(where, tuple(words[1:]), prog, text)
    return None


def shell_commands() -> list[Command]:
    found: list[Command] = []
    for path, (blocks, prose) in _DOCS.items():
        for b in blocks:
            if b.lang in SHELL_LANGS:
                for words in _simple_commands(b.text):
                    cmd = _command(b.where, words, " ".join(words))
                    if cmd:
                        found.append(cmd)
        for span in inline_code(prose):
            if re.match(r"^(\S*/)?labcam\s|^(\./)?scripts/serve\.sh\s", span + " ") and "…" not in span and "..." not in span:
                for words in _simple_commands(span):
                    cmd = _command(f"{path.relative_to(ROOT)} (inline)", words, span)
                    if cmd:
                        found.append(cmd)
    return found


COMMANDS = shell_commands()
LABCAM_COMMANDS = [c for c in COMMANDS if c.program == "labcam"]


def _labcam_executable() -> str:
    exe = Path(sys.executable).with_name("labcam")
    if exe.exists():
        return str(exe)
    found = shutil.which("labcam")
    assert found, "the labcam command is not installed in this environment"
    return found


_HELP: dict[str, str] = {}


def real_help(subcommand: str) -> str:
    """The installed ``labcam <subcommand> --help`` output."""
    if subcommand not in _HELP:
        out = subprocess.run([_labcam_executable(), subcommand, "--help"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        _HELP[subcommand] = out.stdout
    return _HELP[subcommand]


def test_docs_show_labcam_commands() -> None:
    subcommands = {c.argv[0] for c in LABCAM_COMMANDS if c.argv}
    assert {"serve", "info"} <= subcommands, subcommands


@pytest.mark.parametrize("cmd", LABCAM_COMMANDS, ids=[f"{c.where}: labcam {' '.join(c.argv)}" for c in LABCAM_COMMANDS])
def test_labcam_command_parses(cmd: Command) -> None:
    from labcam.cli import build_parser

    argv = [a for a in cmd.argv]
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:
            assert exc.code == 0, f"{cmd.where}: `{cmd.text}` is refused by labcam's parser:\n{stderr.getvalue()}"
            return
    if args.command:
        help_text = real_help(args.command)
        for word in argv:
            if word.startswith("--"):
                flag = word.split("=", 1)[0]
                assert re.search(rf"(^|[\s\[,]){re.escape(flag)}\b", help_text), f"{cmd.where}: {flag} is not in `labcam {args.command} --help`"


def test_scripts_and_npm_scripts_named_in_commands_exist() -> None:
    package = json.loads((ROOT / "frontend" / "package.json").read_text(encoding="utf-8"))
    scripts = package.get("scripts", {})
    for c in COMMANDS:
        if c.program.startswith(("scripts/", "./scripts/")):
            assert (ROOT / c.program).is_file(), f"{c.where}: {c.program} does not exist"
        if c.program == "npm" and c.argv:
            if c.argv[0] == "run" and len(c.argv) > 1:
                assert c.argv[1] in scripts, f"{c.where}: npm run {c.argv[1]}: no such script in frontend/package.json"
            elif c.argv[0] == "test":
                assert "test" in scripts


# -- configuration.md: every option, every trait, real defaults ---------------------------------------
def _table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|\s*-", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _documented_default(cell: str) -> str | None:
    """The default cell's value when it is exactly one code span, else None (words: not compared)."""
    m = re.fullmatch(r"`([^`]+)`", cell.strip())
    return m.group(1) if m else None


def _same(documented: str, actual: object) -> bool:
    if str(actual) == documented:
        return True
    try:
        value = ast.literal_eval(documented)
    except (ValueError, SyntaxError):
        return False
    if isinstance(value, (int, float)) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return float(value) == float(actual)
    return value == actual


def test_configuration_documents_every_serve_option_with_its_default() -> None:
    from labcam.cli import build_parser

    parser = build_parser()
    serve = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices["serve"]  # type: ignore[union-attr]
    rows = {}
    for row in _table_rows(CONFIGURATION.read_text(encoding="utf-8")):
        m = re.match(r"`(--[\w-]+)", row[0])
        if m and len(row) >= 3:
            rows[m.group(1)] = row
    missing, wrong = [], []
    for action in serve._actions:
        flags = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
        if not flags:
            continue
        flag = flags[0]
        if flag not in rows:
            missing.append(flag)
            continue
        documented = _documented_default(rows[flag][1])
        if documented is not None and action.default not in (None, "==SUPPRESS==") and not isinstance(action.default, list):
            if not _same(documented, action.default):
                wrong.append(f"{flag}: documented {documented!r}, really {action.default!r}")
    assert not missing, f"docs/configuration.md does not document these `labcam serve` options: {missing}"
    assert not wrong, "docs/configuration.md has wrong defaults: " + "; ".join(wrong)
    for flag in rows:
        assert re.search(rf"(^|[\s\[,]){re.escape(flag)}\b", real_help("serve")), f"docs/configuration.md documents {flag}, which `labcam serve --help` does not have"


def _labcam_app():  # type: ignore[no-untyped-def]
    pytest.importorskip("jupyter_server")
    from labcam_jupyter import LabcamApp

    return LabcamApp


def test_configuration_documents_every_extension_trait_with_its_default() -> None:
    app = _labcam_app()
    traits = app.class_own_traits(config=True)
    rows = {}
    for row in _table_rows(CONFIGURATION.read_text(encoding="utf-8")):
        m = re.fullmatch(r"`LabcamApp\.(\w+)`", row[0])
        if m and len(row) >= 3:
            rows[m.group(1)] = row
    missing = sorted(set(traits) - set(rows))
    assert not missing, f"docs/configuration.md does not document these LabcamApp traits: {missing}"
    wrong = []
    for name, row in rows.items():
        assert name in traits, f"docs/configuration.md documents LabcamApp.{name}, which does not exist"
        documented = _documented_default(row[1])
        if documented is not None and not _same(documented, traits[name].default_value):
            wrong.append(f"LabcamApp.{name}: documented {documented}, really {traits[name].default_value!r}")
    assert not wrong, "docs/configuration.md has wrong trait defaults: " + "; ".join(wrong)


def _all_text() -> Iterator[tuple[Path, str]]:
    for path in DOC_FILES:
        yield path, path.read_text(encoding="utf-8")


def test_every_labcam_trait_mentioned_exists_and_command_line_values_are_valid() -> None:
    from traitlets.config import Config

    app = _labcam_app()
    traits = app.class_traits(config=True)
    mentioned = 0
    for path, text in _all_text():
        for m in re.finditer(r"\bLabcamApp\.(\w+)", text):
            mentioned += 1
            assert m.group(1) in traits, f"{path.relative_to(ROOT)}: LabcamApp.{m.group(1)} is not a trait of the extension"
        for m in re.finditer(r"--LabcamApp\.(\w+)=([^\s`]+)", text):
            name, value = m.groups()
            parsed = traits[name].from_string(value)
            app(config=Config({"LabcamApp": {name: parsed}}))  # raises TraitError for a bad value
    assert mentioned, "the docs mention no LabcamApp trait"


def test_jupyter_settings_mentioned_exist() -> None:
    pytest.importorskip("jupyter_server")
    from jupyter_server.auth.identity import IdentityProvider
    from jupyter_server.serverapp import ServerApp

    classes = {"ServerApp": ServerApp, "IdentityProvider": IdentityProvider}
    for path, text in _all_text():
        for m in re.finditer(r"\b(ServerApp|IdentityProvider)\.(\w+)", text):
            cls, name = m.groups()
            assert name in classes[cls].class_traits(), f"{path.relative_to(ROOT)}: {cls}.{name} is not a Jupyter setting"


# -- links ---------------------------------------------------------------------------------------------
def github_slugs(path: Path) -> set[str]:
    _, prose = _DOCS.get(path) or split_markdown(path)
    slugs: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # links keep their text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower().replace("`", "")).replace(" ", "-")
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        slugs.add(slug if n == 0 else f"{slug}-{n}")
    return slugs


def relative_links() -> list[tuple[Path, str]]:
    links = []
    for path, (_, prose) in _DOCS.items():
        prose = re.sub(r"`[^`\n]*`", "", prose)
        for m in re.finditer(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose):
            target = m.group(1)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                links.append((path, target))
    return links


LINKS = relative_links()


@pytest.mark.parametrize("path,target", LINKS, ids=[f"{p.relative_to(ROOT)} -> {t}" for p, t in LINKS])
def test_relative_link_resolves(path: Path, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    dest = (path.parent / file_part).resolve() if file_part else path
    assert dest.exists(), f"{path.relative_to(ROOT)}: the link {target} points to nothing ({dest})"
    if anchor and dest.suffix == ".md":
        assert anchor in github_slugs(dest), f"{path.relative_to(ROOT)}: no heading #{anchor} in {dest.relative_to(ROOT)} (has: {sorted(github_slugs(dest))})"


# -- python examples -----------------------------------------------------------------------------------
PYTHON_BLOCKS = [b for b in all_blocks() if b.lang in PYTHON_LANGS]
RUNNABLE = [b for b in PYTHON_BLOCKS if SKIP_RUN not in b.text and "no-run" not in b.info]
# A page's examples run in order, in one interpreter and one namespace, as a reader runs them: a
# later block may use what an earlier one defined.
RUNNABLE_PAGES = sorted({b.path for b in RUNNABLE})

# Run before a page's examples: `labcam.open()` / `labcam.open("auto")` opens the simulated camera,
# so the examples run the same on a machine with a PixeLINK camera.
PRELUDE = textwrap.dedent(
    """\
    import labcam.cameras.selection as _labcam_selection
    _labcam_open_camera = _labcam_selection.open_camera
    def _labcam_doc_open_camera(camera="auto", **options):
        return _labcam_open_camera("simulated" if camera == "auto" else camera, **options)
    _labcam_selection.open_camera = _labcam_doc_open_camera
    """
)

# Runs the blocks (a JSON list of {"where", "code"}) one after the other in one namespace.
RUNNER = textwrap.dedent(
    """\
    import json, linecache, sys, traceback
    blocks = json.load(open(sys.argv[1], encoding="utf-8"))
    namespace = {"__name__": "__main__"}
    for block in blocks:
        print(f"=== {block['where']}", flush=True)
        # Tracebacks then show the example's own lines.
        linecache.cache[block["where"]] = (len(block["code"]), None, block["code"].splitlines(True), block["where"])
        try:
            exec(compile(block["code"], block["where"], "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED: the example at {block['where']}", file=sys.stderr, flush=True)
            sys.exit(1)
    """
)


def test_skipped_examples_are_few() -> None:
    skipped = [b.where for b in PYTHON_BLOCKS if b not in RUNNABLE]
    assert len(skipped) <= max(3, len(PYTHON_BLOCKS) // 3), f"too many python examples are not run: {skipped}"
    for b in PYTHON_BLOCKS:
        if b not in RUNNABLE:
            assert re.search(rf"{SKIP_RUN}\s*\(.+\)", b.text), f"{b.where}: say why the example cannot run: '# {SKIP_RUN} (why)'"


@pytest.fixture(scope="module")
def doc_server() -> Iterator[str]:
    """`labcam serve --camera simulated` on a free port, for examples that talk to localhost:8001."""
    proc = subprocess.Popen(
        [_labcam_executable(), "serve", "--camera", "simulated", "--port", "0", "--width", "640", "--height", "480"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = []
    url = None
    for line in proc.stdout:  # returns at EOF if the server dies
        lines.append(line)
        m = re.search(r"listening on (http://[\d.]+:\d+)/", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        pytest.fail("labcam serve did not start:\n" + "".join(lines))
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.stdout.close()


# Pages whose examples do not run yet, each with why: reported as XFAIL (-ra) so it stays visible.
# Remove an entry once its page's examples run (the test then shows XPASS).
PENDING_EXAMPLES: dict[str, str] = {}  # page -> why its examples cannot run yet (keep empty)


def _example_pages() -> list[object]:
    params: list[object] = []
    for p in RUNNABLE_PAGES:
        rel = str(p.relative_to(ROOT))
        marks = [pytest.mark.xfail(reason=PENDING_EXAMPLES[rel], strict=False)] if rel in PENDING_EXAMPLES else []
        params.append(pytest.param(p, id=rel, marks=marks))
    return params


@pytest.mark.parametrize("page", _example_pages())
def test_python_examples_run(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    blocks = [{"where": b.where, "code": b.text} for b in RUNNABLE if b.path == page]
    if any(re.search(r"(localhost|127\.0\.0\.1):8001", b["code"]) for b in blocks):
        url = request.getfixturevalue("doc_server")
        for b in blocks:
            b["code"] = re.sub(r"http://(localhost|127\.0\.0\.1):8001", url, b["code"])
    blocks.insert(0, {"where": "(test prelude: labcam.open() opens the simulated camera)", "code": PRELUDE})
    (tmp_path / "examples.json").write_text(json.dumps(blocks), encoding="utf-8")
    (tmp_path / "runner.py").write_text(RUNNER, encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("LABCAM_URL", None)
    out = subprocess.run(
        [sys.executable, "runner.py", "examples.json"], cwd=tmp_path, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S * len(blocks), env=env,
    )
    assert out.returncode == 0, (
        f"{page.relative_to(ROOT)}: an example failed (a page's python blocks run in order, in one namespace, "
        f"against the simulated camera). Make it run as shown (define what it uses, e.g. `cam = labcam.open()`, "
        f"in it or an earlier block), or mark it with a line `# {SKIP_RUN} (why)`.\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
    )
