"""Generated secret files: whole, root-only, one key when several nodes make it at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from plugin.config import ensure_secret_file


def test_nodes_making_one_secret_file_at_once_all_read_the_same_whole_key(tmp_path):
    path = tmp_path / "keys" / "audit.key"
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda n: ensure_secret_file(path, lambda: f"key-{n:04d}".encode()), range(32)))
    assert made.count(True) == 1
    assert path.read_bytes().startswith(b"key-") and len(path.read_bytes()) == 8
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["audit.key"]  # no temporary file left behind
