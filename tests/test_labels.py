"""--labels files: one label per line, read only from regular files and no further than
the labels asked for could reach; a blank line, an overlong label, a control character or
bytes that are not UTF-8 are refused in one line naming the line."""

from __future__ import annotations

import os
import signal

import pytest

from casvit_deploy.errors import UsageError
from casvit_deploy.formats.coreml.labels import MAX_LABEL_CHARS, MAX_LABELS, check_source, read_labels


def _file(tmp_path, content: str | bytes):
    path = tmp_path / "labels.txt"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def test_labels_read_with_a_bom_crlf_spaces_and_a_final_line_end(tmp_path):
    path = _file(tmp_path, "\ufeffcat\r\n  dog  \r\n" + "x" * MAX_LABEL_CHARS + "\n")
    assert read_labels(path, 3) == ["cat", "dog", "x" * MAX_LABEL_CHARS]
    assert read_labels("imagenet", 1000)[0] == "tench"


@pytest.mark.parametrize("content, message", [
    ("cat\n \t \ndog\n", "line 2 is blank"),
    ("cat\ndog\n\n", "line 3 is blank"),  # an empty last line is a missing label, not an ignored one
    ("cat\nd\0g\nbird\n", "line 2 holds the control character '\\\\x00'"),
    ("cat\nd\x1bg\nbird\n", "line 2 holds the control character '\\\\x1b'"),
    ("cat\nd\u2028g\nbird\n", "line 2 holds the control character '\\\\u2028'"),
    ("cat\n" + "x" * (MAX_LABEL_CHARS + 1) + "\nbird\n", f"line 2 is {MAX_LABEL_CHARS + 1} characters long"),
    ("cat\n" + "é" * 10**6 + "\nbird\n", f"line 2 is longer than {MAX_LABEL_CHARS} characters"),
    (b"cat\n\xffdog\nbird\n", "line 2 is not UTF-8 text \\(byte 0\\)"),
    ("cat\ndog\n", "has 2 labels, the model has 3 classes"),
    ("cat\ndog\ncat\n", "lists 'cat' 2 times"),
])
def test_bad_labels_are_one_line_errors_saying_where(tmp_path, content, message):
    with pytest.raises(UsageError, match=message) as err:
        read_labels(_file(tmp_path, content), 3)
    assert "\n" not in str(err.value)


def test_a_file_is_read_no_further_than_its_labels_could_reach(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(1 << 34)  # 16 GB, sparse: reading it whole would exhaust the memory
    with pytest.raises(UsageError, match=f"line 1 is longer than {MAX_LABEL_CHARS} characters"):
        read_labels(path, 2)
    path.write_text("a\n" * (MAX_LABELS + 1))
    with pytest.raises(UsageError, match=f"holds more than {MAX_LABELS} labels"):
        check_source(path)  # before the model's classes are known


def test_only_a_regular_file_is_taken_and_nothing_blocks(tmp_path):
    check_source(None)
    check_source("ImageNet")
    check_source(_file(tmp_path, "cat\n"))
    with pytest.raises(UsageError, match="line 2 is blank"):
        check_source(_file(tmp_path, "cat\n\ndog\n"))  # the contents too, before the model is loaded
    os.mkfifo(tmp_path / "fifo.txt")
    signal.alarm(60)  # a hang fails the test instead of the suite
    try:
        for source, message in [("/dev/zero", "/dev/zero is a character device, not a regular file"),
                                (tmp_path / "fifo.txt", "is a FIFO \\(named pipe\\)"), (tmp_path, "is a folder"),
                                (tmp_path / "none.txt", "no such file")]:
            with pytest.raises(UsageError, match=message):
                check_source(source)
        with pytest.raises(UsageError, match="is a FIFO"):
            read_labels(tmp_path / "fifo.txt", 1)
    finally:
        signal.alarm(0)
