"""A command's output while it runs: all of it into a log file, its progress lines onto the console."""
from __future__ import annotations

import codecs
import re
import subprocess
import sys
import time
from pathlib import Path

# Lines of a command's output worth showing on the console (the log keeps everything).
PROGRESS = re.compile(r"\| (train_inner|valid) \||done training|Wrote preprocessed|BLEU|best loss|\d+%\|")
MAX_SHOWN = 400  # longer lines (fairseq's config dump) stay in the log only
FAIRSEQ_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| \w+ \| [\w.]+ \| ")


def stream_output(proc: subprocess.Popen, log_path: Path) -> str:
    """Copy the output to the log; echo progress lines (tqdm bars in place on a terminal,
    else at most every 10 s)."""
    assert proc.stdout is not None
    tty = sys.stdout.isatty()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may end mid-character
    chunks: list[str] = []
    pending, shown_bar_at, bar = "", 0.0, ""
    with open(log_path, "a", encoding="utf-8") as log:
        while data := proc.stdout.read1(65536):
            text = decoder.decode(data)
            log.write(text)
            log.flush()
            chunks.append(text)
            pending += text
            *pieces, pending = re.split(r"(\r|\n)", pending)
            for piece, end in zip(pieces[0::2], pieces[1::2]):
                if len(piece) > MAX_SHOWN or not PROGRESS.search(piece):
                    continue
                piece = FAIRSEQ_PREFIX.sub("", piece).rstrip()
                if end == "\n":
                    print(("\r" if tty and bar else "") + f"    {piece}".ljust(len(bar) + 4), flush=True)
                    bar = ""
                elif tty:
                    print(f"\r    {piece}".ljust(len(bar) + 5), end="", flush=True)
                    bar = piece
                elif time.monotonic() - shown_bar_at > 10:
                    print(f"    {piece}", flush=True)
                    shown_bar_at = time.monotonic()
    if bar:
        print(flush=True)
    return "".join(chunks)


def last_line(output: str) -> str:
    """The last non-empty line of a command's output, without fairseq's logging prefix."""
    lines = [line for line in re.split(r"[\r\n]", output) if line.strip()]
    return FAIRSEQ_PREFIX.sub("", lines[-1]).strip() if lines else "no output"
