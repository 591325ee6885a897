"""read_json: one reader for every JSON file the runtime and the export side read, errors naming the file."""

import pytest

from edge_sched.jsonfile import JSONFileError, read_json
from edge_sched.pipelines.loading import PipelineLoadError
from edge_sched.schedulers import ConfigError
from edge_sched.schedulers.configuration import read_config_file


def _file(tmp_path, content: bytes, name="config.json"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_reads_objects_and_other_top_levels_when_asked(tmp_path):
    assert read_json(_file(tmp_path, b'{"a": [1, 2.5, null, true]}')) == {"a": [1, 2.5, None, True]}
    assert read_json(_file(tmp_path, b"[1, 2]"), expect=list) == [1, 2]
    assert read_json(_file(tmp_path, b'"x"'), expect=None) == "x"


@pytest.mark.parametrize("content, message", [
    (b'{"a": 1,\n  "b": }', r"config.json: not valid JSON at line 2, column 8: Expecting value"),
    (b"", r"config.json: not valid JSON at line 1, column 1: Expecting value"),
    (b'{"name": "caf\xe9"}', r"config.json: not UTF-8 text \(byte 0xe9 at offset 13\)"),
    (b"[1, 2]", r"config.json: expected an object at the top level, got an array"),
    (b"null", r"config.json: expected an object at the top level, got null"),
])
def test_bad_content(tmp_path, content, message):
    path = _file(tmp_path, content)
    with pytest.raises(JSONFileError, match=message) as err:
        read_json(path)
    assert str(err.value).startswith(str(path))


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(JSONFileError, match=r"no model_index.json \(every pipeline folder has one\)$") as err:
        read_json(tmp_path / "model_index.json", "every pipeline folder has one")
    assert str(err.value).startswith(str(tmp_path))
    with pytest.raises(JSONFileError, match="cannot be read"):
        read_json(tmp_path)  # a folder


def test_callers_keep_their_own_error_types(tmp_path):
    path = _file(tmp_path, b"{oops")
    for error in (ConfigError, PipelineLoadError):
        with pytest.raises(error, match="config.json: not valid JSON at line 1, column 2"):
            read_json(path, error=error)
    with pytest.raises(ConfigError, match="config.json: not valid JSON"):
        read_config_file(path)
    assert issubclass(JSONFileError, ValueError)
