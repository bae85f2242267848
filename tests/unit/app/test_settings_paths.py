import os
import stat

import pytest
import tomli_w

from app import paths, settings


def test_defaults_when_missing_and_save_round_trip(tmp_path):
    s = settings.Settings(tmp_path / "settings.toml")
    assert s.get("chat", "temperature") == settings.DEFAULTS["chat"]["temperature"]
    s.set("chat", "temperature", 0.3)
    s.set("model", "path", "/models/x.gguf")
    s.save()
    again = settings.Settings(tmp_path / "settings.toml")
    assert again.get("chat", "temperature") == 0.3
    assert again.get("model", "path") == "/models/x.gguf"
    assert again.data["version"] == settings.SETTINGS_VERSION


def test_old_version_is_migrated(tmp_path):
    f = tmp_path / "settings.toml"
    f.write_bytes(tomli_w.dumps({"version": 1, "model_path": "/old/model.gguf", "chat": {"top_k": 7}}).encode())
    s = settings.Settings(f)
    assert s.get("model", "path") == "/old/model.gguf"
    assert s.get("chat", "top_k") == 7
    assert s.get("chat", "min_p") == settings.DEFAULTS["chat"]["min_p"], "new keys get defaults"
    assert s.problem == ""


def test_unreadable_file_is_kept_aside_not_lost(tmp_path):
    f = tmp_path / "settings.toml"
    f.write_text("this is = = not toml")
    s = settings.Settings(f)
    assert "could not be read" in s.problem and str(f) in s.problem
    assert (tmp_path / "settings.toml.bad").read_text() == "this is = = not toml"
    assert s.get("chat", "n_ctx") == settings.DEFAULTS["chat"]["n_ctx"]


def test_data_dir_override_puts_everything_under_it(tmp_path):
    p = paths.resolve(tmp_path / "portable")
    for f in (p.conversations_db, p.settings_file, p.engine_log, p.models_dir):
        assert str(f).startswith(str(tmp_path / "portable"))
    assert p.logs_dir.is_dir() and p.models_dir.is_dir()


def _unwritable_dir(tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root ignores permission bits; /proc refuses new files even to root.
        if not os.path.isdir("/proc/self"):
            pytest.skip("no unwritable directory available to root on this platform")
        return "/proc/self/lantern-data"
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return d


def test_unwritable_data_dir_is_a_clear_error(tmp_path):
    d = _unwritable_dir(tmp_path)
    with pytest.raises(paths.DataDirError) as e:
        paths.resolve(d)
    assert "cannot write" in str(e.value) and "--data-dir" in str(e.value)


def test_data_dir_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(paths.DataDirError) as e:
        paths.resolve(f)
    assert str(f) in str(e.value) and "--data-dir" in str(e.value)
