"""The HTTP API's pure parts: OpenAI parameters as engine sampling, the token file, loopback names.
The server itself is tested end to end in tests/integration/test_api_server.py."""

import os

import pytest

from app import api_server as api

DEFAULTS = {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1, "max_tokens": 1024}


def test_openai_sampling_maps_onto_the_engines_and_settings_fill_the_rest():
    s = api.sampling({"temperature": 0, "top_p": 0.5, "seed": 7, "max_tokens": 20, "stop": "END"}, DEFAULTS, 4096)
    assert s == dict(DEFAULTS, temperature=0, top_p=0.5, seed=7, max_tokens=20, stop=["END"])
    assert api.sampling({}, DEFAULTS, 512)["max_tokens"] == 512          # the settings' 1024 is over the cap
    assert api.sampling({"max_completion_tokens": 9}, DEFAULTS, 4096)["max_tokens"] == 9


@pytest.mark.parametrize("body, param", [
    ({"temperature": 3}, "temperature"), ({"top_p": 0}, "top_p"), ({"max_tokens": 5000}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": "9"}, "max_tokens"), ({"seed": 1.5}, "seed"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"stop": [""]}, "stop"), ({"n": 2}, "n"),
])
def test_bad_parameters_are_400_naming_the_parameter(body, param):
    with pytest.raises(api.ApiError) as e:
        api.sampling(body, DEFAULTS, 4096)
    assert e.value.status == 400 and e.value.param == param
    assert e.value.body()["error"]["param"] == param


def test_messages_accept_text_parts_and_developer_and_refuse_the_rest():
    msgs = api.chat_messages({"messages": [{"role": "developer", "content": "Be brief."},
                                           {"role": "user", "content": [{"type": "text", "text": "a"},
                                                                        {"type": "text", "text": "b"}]}]})
    assert msgs == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "ab"}]
    for bad in ({"messages": []}, {"messages": [{"role": "tool", "content": "x"}]},
                {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}):
        with pytest.raises(api.ApiError):
            api.chat_messages(bad)


def test_the_token_is_made_once_private_and_kept(tmp_path):
    token = api.load_or_create_token(tmp_path)
    assert len(token) >= 32 and os.stat(api.token_path(tmp_path)).st_mode & 0o777 == 0o600
    assert api.load_or_create_token(tmp_path) == token
    os.chmod(api.token_path(tmp_path), 0o644)
    assert api.load_or_create_token(tmp_path) == token
    assert os.stat(api.token_path(tmp_path)).st_mode & 0o777 == 0o600
    api.token_path(tmp_path).write_text("short")
    with pytest.raises(api.ApiError, match="api_token"):
        api.load_or_create_token(tmp_path)


def test_loopback_names():
    assert all(api.is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(api.is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "example.com", "::"))
