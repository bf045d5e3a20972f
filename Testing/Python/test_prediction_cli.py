"""``ludosimetry predict``: registered, refuses to overwrite, names what it needs."""

import importlib.util

from LuDosimetryLib.cli import COMMANDS, main


def test_predict_is_a_command():
    assert "predict" in COMMANDS


def test_existing_output_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["predict", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err
    assert (out / "keep.txt").read_text() == "x"


def test_an_unreadable_patient_is_one_line_naming_what_is_missing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    if importlib.util.find_spec("LuDosimetryLib.ingest") is None:
        assert "needs LuDosimetryLib.ingest" in err
    else:  # ingest present: it names the folder it could not read
        assert str(empty) in err
    assert not (tmp_path / "o").exists()
