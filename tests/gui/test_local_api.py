"""Settings › Local API server: off by default (nothing listens), switched on in the dialog it
serves the window's engine with a token the dialog shows and copies, and off again it is gone."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import openai
import pytest

from app.settings import Settings

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def test_off_by_default_then_on_in_the_dialog_serving_the_windows_engine_then_off(make_window, data_dir, qtbot,
                                                                                 prepare, wait_reply):
    port = _free_port()
    paths = prepare(data_dir)
    settings = Settings(paths.settings_file)
    settings.set("api", "port", port)
    settings.save()
    window = make_window()
    assert not window.local_api.running and not _listening(port)     # off: nothing listens
    assert not (data_dir / "api_token").exists()

    dialog = window.open_api_server()
    assert dialog.state.text().startswith("Off")
    dialog.enabled.setChecked(True)
    assert window.local_api.running and _listening(port)
    url, token = dialog.url.text(), dialog.token.text()
    assert url == f"http://127.0.0.1:{port}/v1"
    assert token and token == (data_dir / "api_token").read_text().strip()
    dialog.copy_token.click()
    from PySide6.QtGui import QGuiApplication
    assert QGuiApplication.clipboard().text() == token
    assert Settings(paths.settings_file).get("api", "enabled") is True

    client = openai.OpenAI(base_url=url, api_key=token, max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == [window.session.model["path"].rsplit("/", 1)[-1]]
    answer = client.chat.completions.create(model="any", messages=[{"role": "user", "content": "Say hi"}],
                                            max_tokens=8, temperature=0, seed=1)
    assert answer.choices[0].message.content and answer.usage.completion_tokens <= 8
    with pytest.raises(urllib.error.HTTPError) as e:       # the token is still required
        urllib.request.urlopen(f"{url}/models", timeout=10)
    assert e.value.code == 401 and "error" in json.loads(e.value.read())

    with wait_reply(window):                                # the window's own chat works beside it
        window.send_prompt("Hello")

    dialog.enabled.setChecked(False)
    assert not window.local_api.running and not _listening(port)
    assert Settings(paths.settings_file).get("api", "enabled") is False
    dialog.close()


def test_switched_on_it_serves_again_when_the_window_opens(make_window, data_dir, prepare):
    port = _free_port()
    paths = prepare(data_dir)
    settings = Settings(paths.settings_file)
    settings.set("api", "port", port)
    settings.set("api", "enabled", True)
    settings.save()
    window = make_window()
    assert window.local_api.running and _listening(port)
    window.shutdown()
    assert not _listening(port)
