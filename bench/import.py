"""Time the WhatsApp importer on 100 000-message exports: parsing, then the whole import.

Writes one export per header dialect into a temporary directory (a mix of text, multi-line
messages with date-like continuation lines, attachments in the zip and missing from it,
omitted media, deleted and edited messages, locations, polls and system lines), then times
``parse_export`` on each and prints seconds and messages per second.

Then, end to end, imports two of them (a bare Android ``.txt`` and the iOS zip with media)
into a fresh profile each: opening the store (Argon2id), parsing, sealing every message
and file and inserting them in one transaction, as ``baat import whatsapp`` does.

The import budget is 5 s for 100 000 messages including the store insert; parsing should
take well under 2 s of it.

Last, a 20 MB Android export (about 208 000 messages) through the real command, each run
in its own process so that its peak memory is its own: ``baat import whatsapp --dry-run``
(target: under 5 s and under 200 MB) and the full import into a fresh profile. Wall time,
CPU time and peak RSS are printed, with the ratio to a floor measured in the same run:
reading, decoding and splitting the same file into lines.

    .venv/bin/python bench/import.py [--messages N] [--repeat R] [--skip-parse]
                                     [--large-mb MB] [--skip-large]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baat.client.importing import import_chat
from baat.client.store import Store
from baat.importers.whatsapp import Platform, open_export, parse_export
from baat.importers.whatsapp.testing import ChatLine, ExportStyle, render_chat, zip_export

BUDGET_SECONDS = 2.0
IMPORT_BUDGET_SECONDS = 5.0
LARGE_SECONDS = 5.0
LARGE_MEMORY_MB = 200.0
END_TO_END = ("android en-GB 24h dd/mm/yyyy", "ios de-DE [dd.mm.yy, HH:MM:SS] zip")
PASSPHRASE = "bench passphrase"

DIALECTS = {
    "android en-GB 24h dd/mm/yyyy": ExportStyle(),
    "android en-US 12h m/d/yy NNBSP": ExportStyle(
        date_order="mdy", year_digits=2, pad=False, clock12=True, am_pm_space="\u202f"
    ),
    "ios de-DE [dd.mm.yy, HH:MM:SS] zip": ExportStyle(
        platform=Platform.IOS, date_separator=".", year_digits=2, seconds=True, lrm=True
    ),
    "ios en-US 12h seconds, CRLF": ExportStyle(
        platform=Platform.IOS,
        date_order="mdy",
        year_digits=2,
        pad=False,
        seconds=True,
        clock12=True,
        am_pm_space="\u202f",
        newline="\r\n",
        inner_newline="\n",
    ),
    "android fa-IR Persian digits": ExportStyle(
        date_order="ymd", comma="\u060c", digits="persian", pad=False
    ),
}
AUTHORS = ["Priya", "Farid", "+44 7123 456789", "~\u00a0AK", "張三", "Jahn Doe", "Ana-María", "Bob"]
WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
]


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(3, 16)))


def generate(n: int, ios: bool, seed: int = 1) -> tuple[list[ChatLine], dict[str, bytes]]:
    """``n`` records in time order, and the media files a zip of them would hold."""
    rng = random.Random(seed)
    ts = dt.datetime(2022, 1, 13, 8, 0)
    lines: list[ChatLine] = []
    media: dict[str, bytes] = {}
    for i in range(n):
        ts += dt.timedelta(seconds=rng.randint(5, 900))
        author: str | None = rng.choice(AUTHORS)
        roll = rng.random()
        if roll < 0.78:
            body = _sentence(rng)
        elif roll < 0.86:
            # Multi-line, with a continuation that looks like a date but not like a header.
            body = f"{_sentence(rng)}\n{_sentence(rng)}\n2016-04-29 10:30:00"
        elif roll < 0.91:
            name = f"IMG-{ts:%Y%m%d}-WA{i:04d}.jpg"
            if ios:
                body = f"\u200e<attached: {i:08d}-PHOTO-{ts:%Y-%m-%d-%H-%M-%S}.jpg>"
                name = body[12:-1]
            else:
                body = f"{name} (file attached)\n{_sentence(rng)}"
            if rng.random() < 0.8:  # the rest are "not in export"
                media[name] = b"\xff\xd8\xff" + bytes(rng.randrange(256) for _ in range(16))
        elif roll < 0.94:
            body = "image omitted" if ios else "<Media omitted>"
        elif roll < 0.95:
            body = "This message was deleted"
        elif roll < 0.96:
            body = f"{_sentence(rng)} <This message was edited>"
        elif roll < 0.97:
            body = "location: https://maps.google.com/?q=50.9425526,6.9523387"
        elif roll < 0.98:
            body = "POLL:\nWhen?\nOPTION: Friday (1 vote)\nOPTION: Saturday (3 votes)"
        else:
            author = None
            body = rng.choice(
                ["Mallory left", "You added Mallory", "Bob changed this group's icon"]
            )
        lines.append(ChatLine(timestamp=ts, author=author, body=body))
    return lines, media


def write_export(tmp: str, label: str, style: ExportStyle, n: int) -> Path:
    lines, media = generate(n, style.platform is Platform.IOS)
    text = render_chat(lines, style)
    if "zip" in label:
        path = Path(tmp, "WhatsApp Chat - Bench.zip")
        path.write_bytes(zip_export(text, media=media))
    else:
        path = Path(tmp, "WhatsApp Chat with Bench.txt")
        path.write_bytes(text.encode("utf-8"))
    return path


def bench_parse(tmp: str, n: int, repeat: int) -> float:
    worst = 0.0
    for label, style in DIALECTS.items():
        path = write_export(tmp, label, style, n)
        times, cpu = [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            chat = parse_export(path, date_order=style.date_order, tz="Europe/Berlin")
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        best = min(times)
        worst = max(worst, best)
        s = chat.summary
        records = s.messages + s.system_events
        # CPU time too: on a shared machine it is the steadier of the two figures.
        print(
            f"{label:36} {path.stat().st_size / 1e6:5.1f} MB  "
            f"wall best {best:.3f} s (median {statistics.median(times):.3f})  "
            f"cpu best {min(cpu):.3f} s  {records / best:,.0f} records/s  "
            f"[{records:,} records, {s.attachments_linked} linked, "
            f"{s.attachments_not_in_export} missing, {len(s.unparsed)} unparsed]"
        )
    verdict = "within" if worst < BUDGET_SECONDS else "OVER"
    print(f"slowest dialect {worst:.3f} s: {verdict} the {BUDGET_SECONDS:.1f} s parse budget")
    return worst


def bench_import(tmp: str, n: int, repeat: int) -> float:
    """Best end-to-end time of the slower of the two exports, each into a fresh profile."""
    worst = 0.0
    for label in END_TO_END:
        style = DIALECTS[label]
        path = write_export(tmp, label, style, n)
        runs = []
        for r in range(repeat):
            profile = Path(tmp, f"profile-{len(label)}-{r}")
            Store.create(profile, PASSPHRASE).close()  # registration is not part of it
            t0 = time.perf_counter()
            store = Store.open(profile, PASSPHRASE)
            t1 = time.perf_counter()
            with open_export(path) as export:
                chat = export.parse(date_order=style.date_order, tz="Europe/Berlin")
                t2 = time.perf_counter()
                result = import_chat(store, export, chat, me="Bob")
            t3 = time.perf_counter()
            store.close()
            runs.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2))
        total, kdf, parse, insert = min(runs)
        worst = max(worst, total)
        db = sum(f.stat().st_size for f in profile.iterdir()) / 1e6
        print(
            f"{label:36} import {total:.3f} s = open {kdf:.3f} + parse {parse:.3f} + "
            f"store {insert:.3f}  {result.added / total:,.0f} records/s  "
            f"[{result.added:,} records, {result.media_stored} files, store {db:.1f} MB]"
        )
    verdict = "within" if worst < IMPORT_BUDGET_SECONDS else "OVER"
    print(
        f"slowest import {worst:.3f} s: {verdict} the {IMPORT_BUDGET_SECONDS:.1f} s import budget"
    )
    return worst


def write_large(tmp: str, megabytes: float) -> Path:
    """An Android ``.txt`` of at least ``megabytes`` MB (the mix of ``generate``)."""
    style = DIALECTS["android en-GB 24h dd/mm/yyyy"]
    n = int(megabytes * 10_500)  # about 96 bytes a message
    while True:
        lines, _ = generate(n, ios=False)
        data = render_chat(lines, style).encode("utf-8")
        if len(data) >= megabytes * 1e6:
            break
        n = int(n * megabytes * 1e6 / len(data)) + 1000
    path = Path(tmp, "WhatsApp Chat with Large.txt")
    path.write_bytes(data)
    return path


# Runs the CLI and reports the process's own peak RSS (VmHWM) at exit. Not ru_maxrss: on
# Linux that also counts the parent's pages the child had before exec.
_WRAPPER = """
import atexit, runpy, sys
def report():
    with open("/proc/self/status") as f:
        hwm = next(line for line in f if line.startswith("VmHWM"))
    sys.stderr.write("BENCH " + hwm)
atexit.register(report)
sys.argv = ["baat", *sys.argv[1:]]
runpy.run_module("baat", run_name="__main__")
"""


def _child(args: list[str], profile: Path) -> tuple[float, float, float, str]:
    """Run ``baat ARGS`` in a fresh process: wall s, CPU s, peak RSS MB, and its stdout."""
    env = {**os.environ, "BAAT_PASSPHRASE": PASSPHRASE, "BAAT_PROFILE": str(profile)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"baat {' '.join(args)} failed: {out}{err}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - _child.cpu_before  # type: ignore[attr-defined]
    _child.cpu_before += cpu  # type: ignore[attr-defined]
    hwm_kb = int(next(x for x in err.splitlines() if x.startswith("BENCH ")).split()[2])
    return wall, cpu, hwm_kb * 1024 / 1e6, out


_child.cpu_before = 0.0  # type: ignore[attr-defined]


def bench_large(tmp: str, megabytes: float) -> bool:
    from baat.importers.whatsapp._text import decode, split_lines

    path = write_large(tmp, megabytes)
    size = path.stat().st_size / 1e6
    c0, w0 = time.process_time(), time.perf_counter()
    lines = split_lines(decode(path.read_bytes()))[0]
    floor_cpu, floor_wall = time.process_time() - c0, time.perf_counter() - w0
    print(
        f"large export {size:.1f} MB, {len(lines):,} lines; floor (read, decode, split) "
        f"wall {floor_wall:.3f} s, cpu {floor_cpu:.3f} s"
    )
    del lines
    common = ["import", "whatsapp", str(path), "--date-order", "dmy", "--tz", "Europe/Berlin"]
    profile = Path(tmp, "profile-large")
    Store.create(profile, PASSPHRASE).close()
    ok = True
    for label, extra in (("dry run", ["--dry-run", "--json"]), ("import", ["--json"])):
        wall, cpu, rss, out = _child([*common, *extra, "--profile", str(profile)], profile)
        messages = json.loads(out)["messages"]
        within = wall < LARGE_SECONDS and (label != "dry run" or rss < LARGE_MEMORY_MB)
        ok = ok and (within or label != "dry run")
        print(
            f"large {label:8} wall {wall:.2f} s ({wall / floor_wall:.0f}x floor), "
            f"cpu {cpu:.2f} s ({cpu / floor_cpu:.0f}x floor), peak RSS {rss:.0f} MB, "
            f"{messages / wall:,.0f} messages/s wall: "
            + ("within" if within else "OVER")
            + f" the {LARGE_SECONDS:.0f} s"
            + (f" / {LARGE_MEMORY_MB:.0f} MB target" if label == "dry run" else " target")
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-parse", action="store_true", help="only the end-to-end import")
    parser.add_argument("--large-mb", type=float, default=20.0, help="size of the large export")
    parser.add_argument("--skip-large", action="store_true", help="no large export")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        parse_ok = args.skip_parse or bench_parse(tmp, args.messages, args.repeat) < BUDGET_SECONDS
        import_ok = bench_import(tmp, args.messages, args.repeat) < IMPORT_BUDGET_SECONDS
        large_ok = args.skip_large or bench_large(tmp, args.large_mb)
    return 0 if parse_ok and import_ok and large_ok else 1


if __name__ == "__main__":
    sys.exit(main())
