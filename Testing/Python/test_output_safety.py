"""Issue 16, items 1, 2, 5, 6: outputs never overlap inputs, one writer at a time, no visible partial
result after a kill, modes that follow the umask, one-line errors instead of tracebacks."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.results import atomic_directory, check_output_path, write_csv

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _fake_patient(root: Path) -> Path:
    p = root / "P"
    (p / "dicom").mkdir(parents=True)
    (p / "dicom" / "ct.dcm").write_bytes(b"image")
    (p / "labels").mkdir()
    (p / "labels" / "labels.csv").write_text("label,name\n")
    (p / "calibration.json").write_text("{}")
    return p


def _tree(p: Path) -> dict:
    return {str(f.relative_to(p)): f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()}


def _one_line_error(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


# --- item 1: data loss -------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["same", "above", "inside", "symlink"])
def test_run_refuses_an_output_that_overlaps_the_patient_folder_even_with_force(tmp_path, capsys, where):
    patient = _fake_patient(tmp_path)
    before = _tree(patient)
    out = {"same": patient, "above": tmp_path, "inside": patient / "results", "symlink": tmp_path / "link"}[where]
    if where == "symlink":
        out.symlink_to(patient, target_is_directory=True)
    assert main(["run", str(patient), "--out", str(out), "--force"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "--out" in line and "input" in line
    assert _tree(patient) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["P", *(["link"] if where == "symlink" else [])])


def test_output_guard_protects_sibling_patients_of_a_ledger(tmp_path):
    # `plan d/P001/ledger.json --out d --force` deleted d/P002: the shared guard refuses d and d/P001
    d = tmp_path / "d"
    for pid in ("P001", "P002"):
        (d / pid).mkdir(parents=True)
        (d / pid / "ledger.json").write_text("{}")
    for out in (d, d / "P001", d / "P001" / "ledger.json"):
        with pytest.raises(InputError, match="input"):
            check_output_path(out, [d / "P001" / "ledger.json"])
    check_output_path(d / "P001_plan", [d / "P001" / "ledger.json"])  # a sibling is fine
    with pytest.raises(InputError), atomic_directory(d, overwrite=True, inputs=[d / "P001" / "ledger.json"]):
        pass
    assert (d / "P002" / "ledger.json").is_file()


def test_plan_with_out_above_the_ledger_keeps_the_other_patients(tmp_path, capsys):
    # `plan d/P001/ledger.json --out d --force` deleted d/P002/ledger.json, exit 0
    example = ROOT / "docs" / "examples" / "example_ledger.json"
    d = tmp_path / "d"
    for pid in ("P001", "P002"):
        (d / pid).mkdir(parents=True)
        (d / pid / "ledger.json").write_bytes(example.read_bytes())
    before = _tree(d)
    for out in (d, d / "P001"):
        assert main(["plan", str(d / "P001" / "ledger.json"), "--out", str(out), "--force"]) == 2
        assert "input" in _one_line_error(capsys.readouterr().err)
    assert _tree(d) == before


def test_force_replaces_an_existing_folder_whole_and_leaves_no_sibling(tmp_path):
    dst = tmp_path / "res"
    with atomic_directory(dst) as tmp:
        (tmp / "old.txt").write_text("old")
    with atomic_directory(dst, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in dst.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["res"]  # no .partial, .old or .lock left
    with pytest.raises(RuntimeError), atomic_directory(dst, overwrite=True) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("stage failed")
    assert [p.name for p in dst.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["res"]


# --- item 2: races and kills ---------------------------------------------------------------------
_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from LuDosimetryLib.results import atomic_directory
    with atomic_directory(sys.argv[1], overwrite=True) as tmp:
        (Path(tmp) / "a.txt").write_text("writer")
        Path(sys.argv[2]).write_text("started")
        for _ in range(1200):  # until the test releases it (at most 60 s)
            if Path(sys.argv[2] + ".release").exists():
                break
            time.sleep(0.05)
        (Path(tmp) / "b.txt").write_text("done")
    print("written")
""")


def _start_writer(tmp_path: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    flag = tmp_path / f"started-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(out), str(flag)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if flag.exists():
            return proc, flag
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("writer did not start")


def test_two_concurrent_writers_one_succeeds_the_other_exits_2_naming_the_lock(tmp_path):
    out = tmp_path / "res"
    first, flag = _start_writer(tmp_path, out)
    second = subprocess.run([sys.executable, "-m", "LuDosimetryLib", "concordance", str(_table(tmp_path)), "--out",
                             str(out), "--force", "--bootstrap", "100"], env=ENV, capture_output=True, text=True,
                            timeout=120)
    Path(f"{flag}.release").write_text("go")
    assert first.wait(timeout=60) == 0 and "written" in first.stdout.read()
    assert second.returncode == 2
    line = _one_line_error(second.stderr)
    assert ".res.lock" in line and f"pid {first.pid}" in line
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]


def test_sigkill_leaves_no_visible_partial_result_and_the_next_run_cleans_it(tmp_path):
    out = tmp_path / "res"
    proc, flag = _start_writer(tmp_path, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    flag.unlink()
    visible = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert visible == []
    assert any(".partial-" in p.name for p in tmp_path.iterdir())
    with atomic_directory(out) as tmp:
        (tmp / "ok.txt").write_text("ok")
    assert [p.name for p in tmp_path.iterdir()] == ["res"]


def test_a_killed_writer_not_yet_reaped_counts_as_gone(tmp_path):
    """A zombie (killed, its parent has not waited for it yet) still answers signal 0; its partial is stale."""
    out = tmp_path / "res"
    proc, flag = _start_writer(tmp_path, out)
    proc.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 30

    def zombie_without_files() -> bool:  # the leader turns Z before its other threads have closed the files
        if Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            return False
        return len(os.listdir(f"/proc/{proc.pid}/task")) == 1  # the other threads are gone, with the lock

    while not zombie_without_files():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, 0)  # no error: the PID is still taken
    flag.unlink()
    with atomic_directory(out) as tmp:
        (tmp / "ok.txt").write_text("ok")
    assert [p.name for p in tmp_path.iterdir()] == ["res"]
    proc.wait(timeout=30)


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_sigterm_and_sigint_end_with_one_line_and_no_partial_folder(tmp_path, sig, code, word):
    # a long bootstrap: the signal arrives while the results (statistics, then plots) are being written
    table = _table(tmp_path)
    out = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-m", "LuDosimetryLib", "concordance", str(table), "--out", str(out),
                             "--bootstrap", "200000"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for _ in range(1200):
        if any(".partial-" in p.name for p in tmp_path.iterdir()) or proc.poll() is not None:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert word in _one_line_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.csv"]


# --- item 6: modes follow the umask --------------------------------------------------------------
@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_result_files_and_folders_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        with atomic_directory(tmp_path / "res") as tmp:
            write_csv(tmp / "doses.csv", [{"region": "kidney"}], ["region"])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "res").stat().st_mode) == dir_mode
    assert stat.S_IMODE((tmp_path / "res" / "doses.csv").stat().st_mode) == file_mode


# --- item 5: no tracebacks ------------------------------------------------------------------------
def _table(tmp_path: Path) -> Path:
    t = tmp_path / "pairs.csv"
    t.write_text("patient,region,predicted_Gy,measured_Gy\n" + "".join(
        f"P{i},kidney_left,{2 + 0.3 * i},{2.1 + 0.25 * i}\nP{i},parotid_left,{4 + 0.2 * i},{3.8 + 0.3 * i}\n"
        for i in range(1, 6)))
    return t


@pytest.mark.parametrize("command", ["kernel", "concordance", "run", "inspect", "plan"])
def test_an_unwritable_output_folder_is_one_line_and_exit_2(tmp_path, capsys, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "sub" / "out"
    patient = _fake_patient(tmp_path)
    args = {"kernel": ["kernel", "--voxel-size", "4.8", "4.8", "4.8", "--no-photons", "--out", str(out / "k.nii.gz")],
            "concordance": ["concordance", str(_table(tmp_path)), "--out", str(out), "--bootstrap", "100"],
            "run": ["run", str(patient), "--out", str(out)],
            "inspect": ["inspect", str(patient), "--out", str(out)],
            "plan": ["plan", str(ROOT / "docs" / "examples" / "example_ledger.json"), "--out", str(out),
                     "--prescribed-kidney-dose-Gy", "5"]}[command]
    assert main(args) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert str(blocker) in line


@pytest.mark.parametrize("args, option", [
    (["concordance", "t.csv", "--out", "o", "--bootstrap", "0"], "--bootstrap"),
    (["concordance", "t.csv", "--out", "o", "--bootstrap", "-5"], "--bootstrap"),
    (["response", "t.csv", "--out", "o", "--seed", "-1"], "--seed"),
    (["phantom", "--seed", "-1", "--out", "o"], "--seed"),
    (["cohort", "c", "--out", "o", "--workers", "0"], "--workers"),
    (["demo", "--workers", "-2"], "--workers"),
    (["run", "p", "--out", "o", "--cycle", "0"], "--cycle"),
    (["inspect", "p", "--injected-activity-MBq", "-5"], "-5 MBq"),
    (["kernel", "--voxel-size", "4", "0", "4", "--out", "k.nii.gz"], "--voxel-size"),
    (["kernel", "--voxel-size", "4", "nan", "4", "--out", "k.nii.gz"], "--voxel-size"),
])
def test_numeric_options_are_checked_when_parsed_in_the_users_units(capsys, args, option):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and option in err.splitlines()[-1]


def test_injected_activity_is_echoed_as_typed(capsys):
    with pytest.raises(SystemExit):
        main(["inspect", "p", "--injected-activity-MBq", "-5"])
    last = capsys.readouterr().err.splitlines()[-1]
    assert "got -5 MBq" in last and "5000000" not in last


def test_the_cli_turns_os_errors_into_one_line(tmp_path, capsys):
    # a table that is a folder is an OSError where the file is opened: one line naming it, exit 2
    table = tmp_path / "pairs.csv"
    table.mkdir()
    for args in (["concordance", str(table), "--out", str(tmp_path / "o")],
                 ["response", str(table), "--out", str(tmp_path / "o")]):
        assert main(args) == 2
        assert str(table) in _one_line_error(capsys.readouterr().err)


def test_run_record_is_plain_json(tmp_path):
    # run.json written through the atomic writer stays readable by others (0644 under umask 022)
    old = os.umask(0o022)
    try:
        from LuDosimetryLib.results import RunRecord

        RunRecord("test").write(tmp_path)
    finally:
        os.umask(old)
    assert json.loads((tmp_path / "run.json").read_text())["command"] == "test"
    assert stat.S_IMODE((tmp_path / "run.json").stat().st_mode) == 0o644
