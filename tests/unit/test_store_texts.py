"""What every store keeps of a text: audit rows fitted to their columns before they are hashed, and
NUL replaced in what is bound on PostgreSQL (whose text cannot hold it); ids no column can hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.errors import NotFound
from plugin.handlers.http import MAX_ID, record_id
from plugin.store.audit import WIDTHS, fitted
from plugin.store.db import REPLACEMENT, without_nul


def test_audit_text_is_cut_to_its_column_and_loses_nul():
    row = fitted({"actor": "a\x00" * 200, "path": "/x" * 1000, "detail": "d" * 10_000, "count": 3})
    assert row["actor"] == ("a" + REPLACEMENT) * 64 and len(row["actor"]) == WIDTHS["actor"] == 128
    assert len(row["path"]) == WIDTHS["path"] == 512
    assert row["detail"] == "d" * 10_000  # Text: no width
    assert row["count"] == 3


@given(st.dictionaries(st.sampled_from(sorted(WIDTHS)), st.text(max_size=600)))
def test_fitting_is_idempotent_so_a_stored_row_hashes_as_it_was_hashed(record):
    once = fitted(record)
    assert fitted(once) == once
    assert all(len(once[name]) <= WIDTHS[name] and "\x00" not in once[name] for name in once)


def test_bound_parameters_lose_nul_in_every_shape():
    assert without_nul({"a": "x\x00y", "b": 1, "c": None}) == {"a": f"x{REPLACEMENT}y", "b": 1, "c": None}
    assert without_nul(("x\x00", 2)) == (f"x{REPLACEMENT}", 2)
    assert without_nul([{"a": "\x00"}, {"a": "ok"}]) == [{"a": REPLACEMENT}, {"a": "ok"}]
    assert without_nul(b"\x00") == b"\x00"  # bytes are bytes



def test_an_id_larger_than_any_store_column_is_unknown_not_an_error():
    assert record_id(str(MAX_ID), "grant") == MAX_ID == 2**31 - 1
    for text in (str(MAX_ID + 1), "99999999999999", "9" * 400):
        with pytest.raises(NotFound):
            record_id(text, "grant")
