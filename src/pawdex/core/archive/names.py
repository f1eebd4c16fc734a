"""Archive member names made safe: relative POSIX paths that cannot escape, fit to show
and store."""

from __future__ import annotations

import re
import unicodedata

_NAME_COMPONENT_MAX = 120

_NAME_TOTAL_MAX = 400

_EXTENSION_MAX = 16

_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})

_NO_PART = frozenset({"", ".", ".."})

_DRIVE = re.compile(r"[A-Za-z]:")


def sanitize_member_name(raw: str | bytes, *, legacy_encoding: str = "cp437") -> str:
    """A relative POSIX path that cannot escape, fit to show and store.

    Bytes that are not UTF-8 are decoded with ``legacy_encoding`` (cp437 for zip, where it
    is the standard's default; tar passes latin-1). Folders are kept; ``.``/``..``, drive
    letters, leading slashes and control characters are dropped.
    """
    text = _decode_name(raw, legacy_encoding)
    text = unicodedata.normalize("NFC", text.replace("\\", "/"))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    parts = [part for part in (p.strip() for p in text.split("/")) if part not in _NO_PART]
    if parts and _DRIVE.match(parts[0]):
        parts[0] = parts[0][2:].strip()  # "C:" or "C:name"
    parts = [_cap_component(p) for p in parts if p not in _NO_PART]
    if not parts:
        return "unnamed"
    return _cap_path(parts)


def _decode_name(raw: str | bytes, legacy_encoding: str) -> str:
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")
            return raw
        except UnicodeEncodeError:  # undecodable bytes carried as surrogates
            raw = raw.encode("utf-8", "surrogateescape" if _escapable(raw) else "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode(legacy_encoding, "replace")


def _escapable(text: str) -> bool:
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


def _cap_component(part: str) -> str:
    if len(part) <= _NAME_COMPONENT_MAX:
        return part
    stem, dot, ext = part.rpartition(".")
    if dot and stem and len(ext) + 1 <= _EXTENSION_MAX:
        return stem[: _NAME_COMPONENT_MAX - len(ext) - 1].rstrip() + "." + ext
    return part[:_NAME_COMPONENT_MAX]


def _cap_path(parts: list[str]) -> str:
    name = parts[-1]
    folders = "/".join(parts[:-1])
    budget = _NAME_TOTAL_MAX - len(name) - 1
    if len(folders) > budget:
        # Keep the top folders (animal, year...) and the file name; cut in the middle.
        folders = folders[: budget + 1].rpartition("/")[0]
    return f"{folders}/{name}" if folders else name


# What operating systems, NAS boxes and photo tools leave beside photos: never a photo, never
# a failure. Compared case-insensitively.
_JUNK_FILES = frozenset({
    ".ds_store", "thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", ".picasa.ini",
    "picasa.ini", ".localized", ".directory", ".bridgesort", ".bridgelabelsandratings",
})  # fmt: skip
_JUNK_FOLDERS = frozenset({
    "__macosx", ".spotlight-v100", ".trashes", ".fseventsd", ".temporaryitems",
    ".documentrevisions-v100", "$recycle.bin", "system volume information", "@eadir",
    ".thumbnails", ".picasaoriginals",
})  # fmt: skip


def junk_reason(name: str) -> str | None:
    """Why the file at ``name`` (a sanitised member name) is system clutter, or None."""
    *folders, base = name.split("/")
    for folder in folders:
        if folder.lower() in _JUNK_FOLDERS:
            return f"system folder {folder}/"
    if base.lower() in _JUNK_FILES:
        return f"system file {base}"
    if base.startswith("._"):
        return "macOS resource fork"
    return None
