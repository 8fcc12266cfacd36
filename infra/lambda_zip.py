#!/usr/bin/env python3
"""Write Lambda zips reproducibly; check that they will run on provided.al2023.

    python3 infra/lambda_zip.py pack BINARY ZIP
    python3 infra/lambda_zip.py [--arch x86_64|arm64] [--max-glibc 2.34] ZIP...

`pack` writes ZIP (atomically) holding BINARY as `bootstrap`. Every zip of
the repository is written by write_zip() below (infra/local/build.sh,
infra/package.sh, bench/harness/artifacts.py): fixed 1980-01-01 timestamps,
Unix modes, deflate level 9, so the same input gives the same bytes and a
redeploy of an unchanged binary has nothing to update. zipfile is the
library; what is ours is only the fixed metadata Lambda and reproducibility
need (no zip tool writes a fixed date and mode without options that differ
between platforms).

Without `pack`, it checks:

Each zip must hold exactly one entry, an executable regular file named
`bootstrap`: an ELF executable for the architecture whose highest GLIBC_x.y
symbol version is at most --max-glibc (provided.al2023 ships glibc 2.34; a
binary linked against newer symbols fails at start-up with "version
`GLIBC_2.xx' not found"). Static (musl) binaries need no glibc and pass.
Standard library only (no readelf), so it runs wherever python3 does.
Exit 0 when every zip passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import zipfile
from pathlib import Path

EM = {62: "x86_64", 183: "arm64"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no build time in the bytes


def write_zip(dst: Path, entries) -> int:
    """Write (arcname, bytes, mode) entries in the given order to dst; its size in bytes."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        for arcname, data, mode in entries:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.create_system = 3  # Unix, so external_attr carries the mode
            info.external_attr = ((0o100000 | mode) & 0xFFFF) << 16  # a regular file
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data, compresslevel=9)
    os.replace(tmp, dst)
    return dst.stat().st_size


def pack(binary: Path, dst: Path) -> int:
    """The Lambda zip of one executable: binary stored as `bootstrap`, rwxr-xr-x."""
    return write_zip(dst, [("bootstrap", Path(binary).read_bytes(), 0o755)])


SHT_GNU_VERNEED = 0x6FFFFFFE


def glibc_versions(elf: bytes) -> list[tuple[int, ...]]:
    """GLIBC_x.y versions the ELF needs, from its .gnu.version_r section."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError("not a 64-bit ELF file")
    end = "<" if elf[5] == 1 else ">"
    shoff, = struct.unpack_from(end + "Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from(end + "HH", elf, 0x3A)
    sections = [struct.unpack_from(end + "IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    found = set()
    for _, sh_type, _, _, off, _, link, info, _, _ in sections:
        if sh_type != SHT_GNU_VERNEED:
            continue
        strtab_off = sections[link][4]

        def cstr(at: int) -> str:
            return elf[strtab_off + at: elf.index(b"\0", strtab_off + at)].decode()

        need = off
        for _ in range(info):
            _, cnt, _, aux, nxt = struct.unpack_from(end + "HHIII", elf, need)
            a = need + aux
            for _ in range(cnt):
                _, _, _, name, anext = struct.unpack_from(end + "IHHII", elf, a)
                ver = cstr(name)
                if ver.startswith("GLIBC_") and ver[6:].replace(".", "").isdigit():
                    found.add(tuple(int(p) for p in ver[6:].split(".")))
                a += anext
            need += nxt
            if nxt == 0:
                break
    return sorted(found)


def check(path: Path, arch: str | None, max_glibc: tuple[int, ...]) -> list[str]:
    problems = []
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        if names != ["bootstrap"]:
            return [f"holds {names}, not a single 'bootstrap'"]
        info = infos[0]
        mode = info.external_attr >> 16
        if info.create_system != 3 or not mode & 0o100000 or not mode & 0o111:
            problems.append(f"bootstrap is not an executable regular file (mode {oct(mode)})")
        elf = z.read(info)
    machine = EM.get(struct.unpack_from("<H", elf, 0x12)[0], "unknown") if elf[:4] == b"\x7fELF" else None
    if machine is None:
        return problems + ["bootstrap is not an ELF executable"]
    if arch and machine != arch:
        problems.append(f"bootstrap is built for {machine}, not {arch}")
    versions = glibc_versions(elf)
    newest = versions[-1] if versions else None
    if newest and newest > max_glibc:
        too_new = [".".join(map(str, v)) for v in versions if v > max_glibc]
        problems.append(f"needs GLIBC {', '.join(too_new)}; provided.al2023 has "
                        f"{'.'.join(map(str, max_glibc))}")
    size = path.stat().st_size
    glibc = f"GLIBC <= {'.'.join(map(str, newest))}" if newest else "no glibc symbols (static)"
    print(f"  {path}: {size:>10,} bytes ({size / 1048576:.1f} MiB zipped, "
          f"{len(elf) / 1048576:.1f} MiB bootstrap), {machine}, {glibc}"
          + ("" if not problems else "  FAIL"))
    return problems


def main() -> int:
    if sys.argv[1:2] == ["pack"]:
        if len(sys.argv) != 4:
            sys.exit("usage: lambda_zip.py pack BINARY ZIP")
        pack(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(set(EM.values())))
    ap.add_argument("--max-glibc", default="2.34")
    ap.add_argument("zips", nargs="+", type=Path)
    args = ap.parse_args()
    max_glibc = tuple(int(p) for p in args.max_glibc.split("."))
    failed = False
    for z in args.zips:
        if not z.is_file():
            print(f"  {z}: missing  FAIL")
            failed = True
            continue
        for p in check(z, args.arch, max_glibc):
            print(f"    {z.name}: {p}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
