"""Camera hosts announce themselves: the runtime file of a real ``labcam serve``, ``labcam info``'s list,
and the files a reader must not trust (dead pid, garbled, another schema, readable by others)."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from test_cli import SMALL, run_labcam, serve  # noqa: F401 (serve: the fixture)

import labcam
from labcam import hosts
from labcam.hosts import HostInfo

INFO = ["info", "--camera", "simulated", "--width", "320", "--height", "240"]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` s saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def host_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("labcam-host-*.json")) if folder.exists() else []


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runtime folder of this test (not yet created), passed to every labcam process it starts."""
    folder = tmp_path / "runtime" / "labcam"
    monkeypatch.setenv("LABCAM_RUNTIME_DIR", str(folder))
    return folder


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: no process has this pid now
    return child.pid


def a_host(**changes: object) -> HostInfo:
    fields: dict[str, object] = {"url": "http://127.0.0.1:8123/", "driver": "pixelink", "model": "PL-D755MU",
                                 "serial": "777", "token": "SeCrEt"}
    return HostInfo(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_announces_itself_while_it_runs_and_withdraws_on_exit(serve, runtime: Path, sig: int) -> None:  # noqa: F811
    s = serve(*SMALL, "--token", "T0k3n")
    wait_until(lambda: len(host_files(runtime)) == 1, "labcam serve writes its runtime file")
    (path,) = host_files(runtime)
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["schema"] == "labcam-host/1"
    assert data["url"] == s.url  # the bound port, not the 0 asked for
    assert not data["url"].endswith(":0/")
    assert (data["driver"], data["model"], data["serial"]) == ("simulated", "labcam simulated microscope", "SIM-0001")
    assert data["pid"] == s.proc.pid
    assert data["token"] == "T0k3n"
    assert data["version"] == labcam.__version__
    assert data["cameras"] == ["default"]
    assert datetime.fromisoformat(data["started"]).tzinfo is not None
    assert os.listdir(runtime) == [path.name], "no temporary file is left beside it"

    out = run_labcam(*INFO)
    assert out.returncode == 0, out.stderr
    assert "hosts:    1 running on this machine" in out.stdout
    line = next(ln for ln in out.stdout.splitlines() if s.url in ln)
    assert "simulated camera 'labcam simulated microscope' (serial SIM-0001)" in line
    assert f"pid {s.proc.pid}" in line and "token: yes" in line
    assert "T0k3n" not in out.stdout + out.stderr, "labcam info must never print a token"

    assert s.stop(sig) == 0
    assert host_files(runtime) == [], f"the runtime file outlived labcam serve:\n{s.output}"


def test_the_file_of_a_killed_serve_is_removed_by_the_next_listing(serve, runtime: Path) -> None:  # noqa: F811
    s = serve(*SMALL)
    wait_until(lambda: len(host_files(runtime)) == 1, "labcam serve writes its runtime file")
    s.proc.kill()  # SIGKILL: no chance to withdraw
    s.proc.wait(10)
    (left,) = host_files(runtime)
    out = run_labcam(*INFO)
    assert out.returncode == 0, out.stderr
    assert "hosts:    none running" in out.stdout and s.url not in out.stdout
    assert not left.exists()


def test_a_file_whose_process_is_gone_is_ignored_and_removed(runtime: Path) -> None:
    stale = hosts.announce(a_host(pid=dead_pid()))
    assert stale.exists()
    out = run_labcam(*INFO)
    assert out.returncode == 0, out.stderr
    assert "hosts:    none running" in out.stdout
    assert "PL-D755MU" not in out.stdout
    assert not stale.exists()
    assert "Traceback" not in out.stderr and "WARNING" not in out.stderr


def _garbled(path: Path) -> str:
    path.write_text('{"schema": "labcam-host/1", "url": "http://127.0.0.1:8')  # cut off mid-write
    path.chmod(0o600)
    return "not JSON"


def _other_schema(path: Path) -> str:
    # A jpserver-*.json-like file, live pid: not ours to read.
    path.write_text(json.dumps({"pid": os.getpid(), "url": "http://localhost:8888/", "token": "x"}))
    path.chmod(0o600)
    return "schema is None"


def _bad_pid(path: Path) -> str:
    path.write_text(json.dumps({**a_host().to_dict(), "pid": "1234"}))
    path.chmod(0o600)
    return "'pid' should be a whole number"


def _readable_by_others(path: Path) -> str:
    path.write_text(json.dumps(a_host().to_dict()))  # a live pid (this test) and a token
    path.chmod(0o644)
    return "mode is 0644"


def _symlink(path: Path) -> str:
    target = path.parent.parent / "elsewhere.json"
    target.write_text(json.dumps(a_host().to_dict()))
    target.chmod(0o600)
    path.symlink_to(target)
    return "symbolic link"


@pytest.mark.parametrize("make", [_garbled, _other_schema, _bad_pid, _readable_by_others, _symlink],
                         ids=["garbled", "other-schema", "bad-pid", "mode-0644", "symlink"])
def test_an_untrusted_or_broken_file_is_ignored_with_one_warning(
    runtime: Path, make: Callable[[Path], str], caplog: pytest.LogCaptureFixture
) -> None:
    good = hosts.announce(a_host(url="http://127.0.0.1:8124/", model="PL-GOOD", token=None))
    bad = runtime / "labcam-host-99999-8001.json"
    reason = make(bad)
    before = bad.lstat()

    out = run_labcam(*INFO)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    warnings = [ln for ln in out.stderr.splitlines() if "WARNING" in ln]
    assert len(warnings) == 1, out.stderr
    assert str(bad) in warnings[0] and reason in warnings[0], warnings[0]
    assert "SeCrEt" not in out.stdout + out.stderr
    assert "hosts:    1 running" in out.stdout  # the good file next to it still counts
    assert "PL-GOOD" in out.stdout and "token: no" in out.stdout
    # Bad input changes nothing: the file is left as it was, for the user to look at.
    assert bad.lstat().st_mtime_ns == before.st_mtime_ns and stat.S_IMODE(bad.lstat().st_mode) == stat.S_IMODE(before.st_mode)
    assert good.exists()

    with caplog.at_level(logging.WARNING, logger="labcam.hosts"):
        assert [h.model for h in hosts.running_hosts()] == ["PL-GOOD"]
    assert [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()] == [warnings[0].split("labcam.hosts: ", 1)[1]]


def test_announced_writes_then_removes_and_find_host_matches_driver_and_serial(runtime: Path) -> None:
    info = a_host()
    assert hosts.running_hosts() == []  # no folder yet: nothing, no error
    with hosts.announced(info) as path:
        assert path is not None and path.parent == runtime
        assert hosts.running_hosts() == [info]
        assert hosts.find_host(driver="pixelink", serial=777) == info
        assert hosts.find_host(driver="pixelink", serial="777") == info
        assert hosts.find_host(driver="pixelink", serial="778") is None
        assert hosts.find_host(driver="simulated") is None
        assert hosts.find_host() == info
    assert not path.exists()
    assert hosts.running_hosts() == []


def test_a_host_that_cannot_write_its_file_still_runs_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    with caplog.at_level(logging.WARNING, logger="labcam.hosts"), hosts.announced(a_host(), not_a_folder) as path:
        assert path is None
    assert any("could not write the runtime file" in r.getMessage() for r in caplog.records)
    assert not_a_folder.read_text() == ""


def test_a_file_written_on_another_machine_is_neither_listed_nor_removed(runtime: Path) -> None:
    # A home folder shared between machines: that pid means nothing here, so the file is not judged.
    elsewhere = hosts.announce(a_host(hostname="some-other-pc", pid=dead_pid()))
    assert hosts.running_hosts() == []
    assert elsewhere.exists()
