"""The tokens file: what a bad one says, and re-reading a changed one in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsfeatures.errors import InvalidRequest, Unauthorized
from dsfeatures.service.auth import TokensFile, hash_token, load_tokens


def entry(name: str, token: str, *scopes: str) -> str:
    quoted = ", ".join(f'"{s}"' for s in scopes)
    return f'[[tokens]]\nname = "{name}"\nsha256 = "{hash_token(token)}"\nscopes = [{quoted}]\n'


def bearer(token: str) -> str:
    return f"Bearer {token}"


def touch_later(path: Path, text: str) -> None:
    """Write ``text`` and move the modification time on (coarse file system clocks)."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tokens = [", "tokens file"),
        ('[[tokens]]\nname = "a"\nsha256 = "x"\nscopes = ["read"]\n', "sha256"),
        (entry("a", "t1", "write"), "unknown scope 'write'"),
        (entry("a", "t1", "read") + entry("b", "t1", "read"), "listed twice"),
        ("tokens = []\n", "no tokens"),
        (entry("a", "t1", "read") + 'extra = "x"\n', "extra"),
    ],
)
def test_a_bad_file_is_refused_naming_what_is_wrong(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    with pytest.raises(InvalidRequest) as e:
        load_tokens(path)
    assert message in e.value.message
    assert str(path) in e.value.message


def test_a_changed_file_is_read_again_in_place(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(entry("old", "t-old", "read"))
    tf = TokensFile(path)
    tokens = tf.tokens  # what the middleware holds
    assert tokens.authenticate(bearer("t-old")).name == "old"
    assert not tf.check()  # unchanged: nothing to do

    touch_later(path, entry("new", "t-new", "admin"))
    assert tf.check()
    assert tokens.authenticate(bearer("t-new")).name == "new"
    with pytest.raises(Unauthorized):
        tokens.authenticate(bearer("t-old"))  # revoked


def test_a_file_renamed_over_the_old_one_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(entry("a", "t-a", "read"))
    tf = TokensFile(path)
    fresh = tmp_path / "tokens.toml.new"
    fresh.write_text(entry("b", "t-b", "read"))
    fresh.replace(path)  # a new inode, as secret mounts and editors do
    assert tf.check()
    assert tf.tokens.authenticate(bearer("t-b")).name == "b"


def test_a_bad_or_missing_file_keeps_the_tokens_in_force(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(entry("a", "t-a", "read"))
    tf = TokensFile(path)

    touch_later(path, entry("a", "t-a", "read", "root"))  # an unknown scope
    assert not tf.check()
    assert tf.tokens.authenticate(bearer("t-a")).name == "a"
    assert not tf.check()  # the same bad file is not read again

    path.unlink()
    assert not tf.check()
    assert tf.tokens.authenticate(bearer("t-a")).name == "a"

    path.write_text(entry("c", "t-c", "read"))  # fixed: read at the next look
    assert tf.check()
    assert tf.tokens.authenticate(bearer("t-c")).name == "c"
    with pytest.raises(Unauthorized):
        tf.tokens.authenticate(bearer("t-a"))


def test_a_bad_file_at_start_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text("tokens = []\n")
    with pytest.raises(InvalidRequest, match="no tokens"):
        TokensFile(path)
