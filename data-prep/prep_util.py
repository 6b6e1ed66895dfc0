"""Python steps of the data-prep recipes: extract, gather, clean, sentencepiece train/encode.

Kept in Python (not Moses perl) so the recipes need only the project venv. Every user mistake
(missing or corrupt archive, misaligned files, bad option) ends as one `error: ...` line on
stderr and exit status 1, never a traceback; the shell recipes stop on it (`set -e`).
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import re
import shutil
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

SGM_SEGMENT = re.compile(r"<seg[^>]*>(.*)</seg>")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\ufeff]")
SPM_TRAIN_SENTENCES = 5_000_000  # sample for joint spm training: enough for 32k, bounded RAM
ENCODE_CHUNK = 100_000  # lines per sentencepiece batch call


class PrepError(Exception):
    """A user-facing failure: reported as one line, no traceback."""


class _atomic:
    """Write to `path.tmp` and rename on success, so a killed step leaves no partial output."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")

    def __enter__(self) -> TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.tmp, "w", encoding="utf-8")
        return self.f

    def __exit__(self, exc_type, exc, tb) -> None:
        self.f.close()
        if exc_type is None:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _extract_tar(archive: Path, dest: Path, members: list[str]) -> None:
    """Extract `members` of a tar/tgz archive in one pass (a tgz of GBs is not decompressed
    twice), failing on the first one that is absent."""
    wanted, found = set(members), set()
    with tarfile.open(archive) as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            if name in wanted and info.isfile():
                info.name = name
                tar.extract(info, dest, filter="data")
                found.add(name)
    for member in members:
        if member not in found:
            raise PrepError(f"archive {archive} lacks expected member {member}")


def _extract_zip(archive: Path, dest: Path, members: list[str]) -> None:
    """Extract `members` of a zip archive, failing on the first one that is absent."""
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        for member in members:
            if member not in names:
                raise PrepError(f"archive {archive} lacks expected member {member}")
            zf.extract(member, dest)


def extract(archive: Path, dest: Path, members: list[str]) -> None:
    """Extract the named members of `archive` (tar, tgz or zip) under `dest`.

    Members are extracted into a temporary folder first, so an interrupted or failed run never
    leaves a half-written file that a re-run would take for finished.
    """
    if not archive.is_file():
        raise PrepError(f"missing archive {archive} (expected members: {' '.join(members)})")
    tmp = dest / f".extract-{archive.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp, members)
        else:
            _extract_tar(archive, tmp, members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as err:
        raise PrepError(
            f"corrupt archive {archive} (expected a readable tar/tgz/zip with "
            f"{' '.join(members)}): {type(err).__name__}: {err}"
        ) from err
    for member in members:
        target = dest / member
        target.parent.mkdir(parents=True, exist_ok=True)
        (tmp / member).replace(target)
    shutil.rmtree(tmp)


def iter_lines(path: Path) -> Iterator[str]:
    """Stream the lines of a plain, gzipped (`.gz`) or WMT SGML (`.sgm`) file.

    Lines end at "\n" only; a stray "\r" inside becomes a space (fairseq-preprocess would
    take it for a line break). Outer spaces are stripped. SGML yields the text of each `<seg>`,
    the way sacreBLEU reads it, so the references we copy are the ones it scores against.
    """
    if not path.is_file():
        raise PrepError(f"missing file {path}")
    gz = path.suffix == ".gz"
    sgm = path.name.endswith((".sgm", ".sgm.gz"))
    try:
        with (gzip.open if gz else open)(path, "rt", encoding="utf-8", newline="\n") as f:
            for line in f:
                if sgm:
                    if not (match := SGM_SEGMENT.search(line)):
                        continue
                    line = match.group(1)
                yield line.replace("\r", " ").strip()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise PrepError(f"corrupt file {path} (expected UTF-8 text{', gzipped' if gz else ''}): {err}") from err


def check_aligned(src: Path, tgt: Path, n_src: int, n_tgt: int) -> None:
    """Fail with one line naming the file pair when their line counts differ."""
    if n_src != n_tgt:
        raise PrepError(f"line count mismatch: {src} has {n_src} lines, {tgt} has {n_tgt}")


def aligned(src: Path, tgt: Path, src_lines: Iterator[str], tgt_lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """Pairs of lines of two streams; raises (naming the files) when one stream ends first."""
    n = 0
    for s, t in itertools.zip_longest(src_lines, tgt_lines):
        if s is None or t is None:
            n_src = n + (s is not None) + sum(1 for _ in src_lines)
            n_tgt = n + (t is not None) + sum(1 for _ in tgt_lines)
            check_aligned(src, tgt, n_src, n_tgt)
        n += 1
        yield s, t


def gather(pairs: list[tuple[Path, Path]], src_out: Path, tgt_out: Path) -> int:
    """Concatenate aligned (source, target) files into one pair; returns the line count.

    Streams, so the 40M-line WMT'14 En-Fr corpus never has to fit in memory.
    """
    total = 0
    with _atomic(src_out) as fs, _atomic(tgt_out) as ft:
        for src, tgt in pairs:
            for s, t in aligned(src, tgt, iter_lines(src), iter_lines(tgt)):
                fs.write(s + "\n")
                ft.write(t + "\n")
                total += 1
    return total


def normalize(line: str) -> str:
    """Drop control/zero-width characters and collapse runs of whitespace to one space."""
    return " ".join(CONTROL_CHARS.sub("", line).split())


def keep_pair(src: str, tgt: str, min_len: int, max_len: int, ratio: float) -> bool:
    """clean-corpus-n's rule on whitespace words: both lengths in [min_len, max_len] and
    neither side more than `ratio` times longer than the other."""
    n_src, n_tgt = len(src.split()), len(tgt.split())
    if not (min_len <= n_src <= max_len and min_len <= n_tgt <= max_len):
        return False
    return n_src <= ratio * n_tgt and n_tgt <= ratio * n_src


def clean(src: Path, tgt: Path, src_out: Path, tgt_out: Path, min_len: int, max_len: int, ratio: float) -> tuple[int, int]:
    """Normalize and length/ratio-filter an aligned pair; returns (kept, total)."""
    kept = total = 0
    with _atomic(src_out) as fs, _atomic(tgt_out) as ft:
        for s, t in aligned(src, tgt, iter_lines(src), iter_lines(tgt)):
            total += 1
            s, t = normalize(s), normalize(t)
            if keep_pair(s, t, min_len, max_len, ratio):
                fs.write(s + "\n")
                ft.write(t + "\n")
                kept += 1
    return kept, total


def _spm():
    """Import sentencepiece with a one-line error instead of a traceback."""
    try:
        import sentencepiece
    except ImportError as err:
        raise PrepError("python package sentencepiece is missing (install requirements.txt into the venv)") from err
    return sentencepiece


def spm_train(inputs: list[Path], model_prefix: Path, vocab_size: int, threads: int) -> None:
    """Train one joint unigram sentencepiece model on all `inputs` (source and target)."""
    spm = _spm()
    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    try:
        spm.SentencePieceTrainer.train(
            input=[str(p) for p in inputs],
            model_prefix=str(model_prefix),
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            input_sentence_size=SPM_TRAIN_SENTENCES,
            shuffle_input_sentence=True,
            num_threads=threads,
            minloglevel=2,
        )
    except RuntimeError as err:
        raise PrepError(f"sentencepiece training failed (try a smaller --vocab-size than {vocab_size}): {err}") from err


def spm_encode(model: Path, src: Path, out: Path, threads: int) -> int:
    """Encode `src` line by line into space-separated pieces; returns the line count."""
    spm = _spm()
    sp = spm.SentencePieceProcessor(model_file=str(model))
    n = 0
    with open(src, encoding="utf-8", newline="\n") as fin, _atomic(out) as fout:
        while chunk := [line.rstrip("\n") for _, line in zip(range(ENCODE_CHUNK), fin)]:
            pieces = sp.encode(chunk, out_type=str, num_threads=threads)
            fout.writelines(" ".join(p) + "\n" for p in pieces)
            n += len(chunk)
    return n


def _pair(spec: str) -> tuple[Path, Path]:
    """Parse `SRC:TGT` into two paths."""
    src, sep, tgt = spec.partition(":")
    if not sep or not src or not tgt:
        raise argparse.ArgumentTypeError(f"expected SRC:TGT, got {spec!r}")
    return Path(src), Path(tgt)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract", help="extract named members of a tar/tgz/zip archive")
    e.add_argument("archive", type=Path)
    e.add_argument("dest", type=Path)
    e.add_argument("members", nargs="+")
    g = sub.add_parser("gather", help="concatenate aligned file pairs (plain, .gz or .sgm)")
    g.add_argument("src_out", type=Path)
    g.add_argument("tgt_out", type=Path)
    g.add_argument("pairs", nargs="+", type=_pair, metavar="SRC:TGT")
    c = sub.add_parser("clean", help="normalize and length/ratio-filter an aligned pair")
    c.add_argument("src", type=Path)
    c.add_argument("tgt", type=Path)
    c.add_argument("src_out", type=Path)
    c.add_argument("tgt_out", type=Path)
    c.add_argument("--min-len", type=int, default=1)
    c.add_argument("--max-len", type=_positive, default=250)
    c.add_argument("--ratio", type=float, default=1.5)
    t = sub.add_parser("spm-train", help="train a joint sentencepiece model")
    t.add_argument("model_prefix", type=Path)
    t.add_argument("inputs", nargs="+", type=Path)
    t.add_argument("--vocab-size", type=_positive, required=True)
    t.add_argument("--threads", type=_positive, default=1)
    n = sub.add_parser("spm-encode", help="encode text files into sentencepiece pieces")
    n.add_argument("model", type=Path)
    n.add_argument("pairs", nargs="+", type=_pair, metavar="IN:OUT")
    n.add_argument("--threads", type=_positive, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "extract":
            extract(args.archive, args.dest, args.members)
        elif args.cmd == "gather":
            n = gather(args.pairs, args.src_out, args.tgt_out)
            print(f"{args.src_out.name}/{args.tgt_out.name}: {n} lines")
        elif args.cmd == "clean":
            kept, total = clean(args.src, args.tgt, args.src_out, args.tgt_out, args.min_len, args.max_len, args.ratio)
            print(f"clean: kept {kept} of {total} pairs")
        elif args.cmd == "spm-train":
            spm_train(args.inputs, args.model_prefix, args.vocab_size, args.threads)
        elif args.cmd == "spm-encode":
            for src, out in args.pairs:
                spm_encode(args.model, src, out, args.threads)
    except PrepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {err.strerror or err}: {err.filename}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
