"""Offline tests of data-prep/: each recipe runs end to end on small fixture archives that have
the real archives' names and internal layout, then re-runs (every step skipped), and fails with
one line on a corrupt or missing archive and on misaligned files."""
from __future__ import annotations

import gzip
import io
import os
import random
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREP = ROOT / "data-prep"
sys.path.insert(0, str(PREP))
import prep_util  # noqa: E402

STEPS = ["fetch", "extract", "gather", "clean", "spm-train", "spm-encode", "binarize", "references"]
MULTI30K = ROOT.parent / "shared" / "data" / "multi30k"
EN_WORDS = "the a man woman dog cat runs walks red blue small big house street park ball child plays with on in under near old young".split()
# A fake "translation": each English word has one fixed foreign word, so pairs are learnable-looking.
FOREIGN = {w: w[::-1] + "ä" for w in EN_WORDS}


def sentence_pair(rng: random.Random, n_words: int, ratio: float = 1.0) -> tuple[str, str]:
    """One aligned pair; the target has round(n_words * ratio) words."""
    src = [rng.choice(EN_WORDS) for _ in range(n_words)]
    tgt = [FOREIGN[w] for w in src] + [FOREIGN[rng.choice(EN_WORDS)] for _ in range(max(0, round(n_words * ratio) - n_words))]
    return " ".join(src).capitalize() + ".", " ".join(tgt[: round(n_words * ratio)]).capitalize() + "."


@dataclass
class Fixture:
    """Archives with a real layout plus what the recipe must make of them."""

    src: str
    tgt: str
    archives: dict[str, dict[str, bytes]] = field(default_factory=dict)
    n_train_kept: int = 0
    n_train_total: int = 0
    valid: list[tuple[str, str]] = field(default_factory=list)
    test: list[tuple[str, str]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def train(self, archive: str, prefix: str, n_good: int = 60, gz: bool = False) -> None:
        """A training corpus PREFIX.{src,tgt}: n_good pairs plus 3 that cleaning must drop
        (ratio 3 > 1.5, 260 words > 250, an empty side)."""
        pairs = [sentence_pair(self.rng, self.rng.randint(3, 12)) for _ in range(n_good)]
        pairs += [sentence_pair(self.rng, 3, ratio=3.0), sentence_pair(self.rng, 260), ("Lonely.", "")]
        self.rng.shuffle(pairs)
        self.n_train_kept += n_good
        self.n_train_total += len(pairs)
        suffix = ".gz" if gz else ""
        for lang, side in ((self.src, 0), (self.tgt, 1)):
            text = "".join(p[side] + "\n" for p in pairs).encode()
            self.archives.setdefault(archive, {})[f"{prefix}.{lang}{suffix}"] = gzip.compress(text) if gz else text

    def plain(self, archive: str, prefix: str, split: str, n: int = 20, gz: bool = False) -> None:
        """A dev/test set as plain aligned text PREFIX.{src,tgt} (optionally gzipped)."""
        pairs = [sentence_pair(self.rng, self.rng.randint(3, 12)) for _ in range(n)]
        getattr(self, split).extend(pairs)
        for lang, side in ((self.src, 0), (self.tgt, 1)):
            text = "".join(p[side] + "\n" for p in pairs).encode()
            self.archives.setdefault(archive, {})[f"{prefix}.{lang}" + (".gz" if gz else "")] = gzip.compress(text) if gz else text

    def sgm(self, archive: str, src_path: str, ref_path: str, split: str, n: int = 20) -> None:
        """A WMT test set as SGML source and reference files, with a leading space in a segment."""
        pairs = [sentence_pair(self.rng, self.rng.randint(3, 12)) for _ in range(n)]
        getattr(self, split).extend(pairs)
        for path, side, kind in ((src_path, 0, "srcset"), (ref_path, 1, "refset")):
            segs = "".join(f'<seg id="{i + 1}"> {p[side]}</seg>\n' for i, p in enumerate(pairs))
            doc = f'<{kind} setid="newstest" srclang="any">\n<doc sysid="ref" docid="d1" genre="news">\n<p>\n{segs}</p>\n</doc>\n</{kind}>\n'
            self.archives.setdefault(archive, {})[path] = doc.encode()

    def write(self, raw_dir: Path) -> None:
        """Write every archive (.tgz/.tar/.zip by name; a bare .gz file is stored as it is)."""
        raw_dir.mkdir(parents=True, exist_ok=True)
        for name, members in self.archives.items():
            path = raw_dir / name
            if name.endswith(".zip"):
                with zipfile.ZipFile(path, "w") as zf:
                    for member, data in members.items():
                        zf.writestr(member, data)
            elif name.endswith((".tgz", ".tar")):
                with tarfile.open(path, "w:gz" if name.endswith(".tgz") else "w") as tar:
                    for member, data in members.items():
                        info = tarfile.TarInfo(member)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
            else:
                path.write_bytes(members[name])


def wmt14en2de() -> Fixture:
    f = Fixture("en", "de")
    f.train("training-parallel-europarl-v7.tgz", "training/europarl-v7.de-en")
    f.train("training-parallel-commoncrawl.tgz", "commoncrawl.de-en")
    f.train("training-parallel-nc-v9.tgz", "training/news-commentary-v9.de-en")
    f.plain("dev.tgz", "dev/newstest2013", "valid")
    f.sgm("test-full.tgz", "test-full/newstest2014-deen-src.en.sgm", "test-full/newstest2014-deen-ref.de.sgm", "test")
    return f


def wmt14en2fr() -> Fixture:
    f = Fixture("en", "fr")
    f.train("training-parallel-europarl-v7.tgz", "training/europarl-v7.fr-en")
    f.train("training-parallel-commoncrawl.tgz", "commoncrawl.fr-en")
    f.train("training-parallel-un.tgz", "un/undoc.2000.fr-en")
    f.train("training-parallel-nc-v9.tgz", "training/news-commentary-v9.fr-en")
    f.train("training-giga-fren.tar", "giga-fren.release2.fixed", gz=True)
    f.plain("dev.tgz", "dev/newstest2012", "valid")
    f.plain("dev.tgz", "dev/newstest2013", "valid")
    f.sgm("test-full.tgz", "test-full/newstest2014-fren-src.en.sgm", "test-full/newstest2014-fren-ref.fr.sgm", "test")
    return f


def wmt16en2ro() -> Fixture:
    f = Fixture("en", "ro")
    f.train("ro-en.tgz", "europarl-v7.ro-en")
    f.train("en-ro.txt.zip", "SETIMES.en-ro")
    f.sgm("dev.tgz", "dev/newsdev2016-enro-src.en.sgm", "dev/newsdev2016-enro-ref.ro.sgm", "valid")
    f.sgm("test.tgz", "test/newstest2016-enro-src.en.sgm", "test/newstest2016-enro-ref.ro.sgm", "test")
    return f


def multi30k() -> Fixture:
    """Bare gzipped files train/val/test_2016_flickr.{en,de}.gz, as in ../shared/data/multi30k.
    The recipe filters with ratio 9, so the ratio-3 pair is kept there."""
    f = Fixture("en", "de")
    f.train("train", "train", gz=True)
    f.n_train_kept += 1  # the ratio-3 pair passes multi30k's ratio of 9
    f.plain("val", "val", "valid", gz=True)
    f.plain("test_2016_flickr", "test_2016_flickr", "test", gz=True)
    # One archive entry per bare file: name it after the file.
    f.archives = {member: {member: data} for members in f.archives.values() for member, data in members.items()}
    return f


RECIPES = {"wmt14en2de": wmt14en2de, "wmt14en2fr": wmt14en2fr, "wmt16en2ro": wmt16en2ro, "multi30k": multi30k}


def run_recipe(name: str, raw_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = ["bash", str(PREP / f"prepare-{name}.sh"), "--raw-dir", str(raw_dir), "--out", str(out), "--workers", "1", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def n_sentences(data_bin: Path, split: str, pair: str, lang: str) -> int:
    from fairseq.data.indexed_dataset import MMapIndexedDataset

    return len(MMapIndexedDataset(str(data_bin / f"{split}.{pair}.{lang}")))


# ---- unit tests of the Python helper ---------------------------------------------------------


def test_keep_pair_follows_clean_corpus_n_rule() -> None:
    assert prep_util.keep_pair("a b", "x y z", 1, 250, 1.5)  # 3/2 = 1.5: kept
    assert not prep_util.keep_pair("a b", "x y z w", 1, 250, 1.5)  # 4/2 = 2 > 1.5
    assert not prep_util.keep_pair("a b c d", "x y", 1, 250, 1.5)  # ratio the other way
    assert not prep_util.keep_pair("", "x", 1, 250, 1.5)  # empty side
    assert not prep_util.keep_pair("a " * 251, "x " * 251, 1, 250, 1.5)  # too long
    assert prep_util.keep_pair("a " * 250, "x " * 250, 1, 250, 1.5)


def test_normalize_drops_control_chars_and_collapses_spaces() -> None:
    assert prep_util.normalize(" a\t b\u200b\x07c  \r") == "a bc"


def test_iter_lines_sgm_and_gz(tmp_path: Path) -> None:
    (tmp_path / "t.sgm").write_text('<refset>\n<doc docid="1">\n<seg id="1"> Hallo  Welt </seg>\n<seg id="2">Ja &amp; nein</seg>\n</doc>\n</refset>\n')
    assert list(prep_util.iter_lines(tmp_path / "t.sgm")) == ["Hallo  Welt", "Ja &amp; nein"]  # as sacreBLEU reads it
    (tmp_path / "t.gz").write_bytes(gzip.compress("eins\r\nzwei \u2028drei\nvier\rfünf\n".encode()))
    # Only \n ends a line; an inner \r becomes a space so fairseq-preprocess cannot split there.
    assert list(prep_util.iter_lines(tmp_path / "t.gz")) == ["eins", "zwei \u2028drei", "vier fünf"]


def test_clean_reports_misaligned_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.en").write_text("a b\nc d\ne f\n")
    (tmp_path / "a.de").write_text("x y\nz w\n")
    rc = prep_util.main(["clean", str(tmp_path / "a.en"), str(tmp_path / "a.de"), str(tmp_path / "o.en"), str(tmp_path / "o.de")])
    assert rc == 1
    assert capsys.readouterr().err == f"error: line count mismatch: {tmp_path / 'a.en'} has 3 lines, {tmp_path / 'a.de'} has 2\n"
    assert not (tmp_path / "o.en").exists()


# ---- the recipes end to end on fixtures ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_end_to_end_and_rerun_skips(name: str, tmp_path: Path) -> None:
    fixture = RECIPES[name]()
    fixture.write(tmp_path / "raw")
    out = tmp_path / "out"
    first = run_recipe(name, tmp_path / "raw", out, "--vocab-size", "120")
    assert first.returncode == 0, first.stderr
    assert [line.split()[2] for line in first.stdout.splitlines() if line.split()[1:2] == ["run"]] == STEPS

    data_bin, pair = out / "data-bin", f"{fixture.src}-{fixture.tgt}"
    dicts = [(data_bin / f"dict.{lang}.txt").read_text() for lang in (fixture.src, fixture.tgt)]
    assert dicts[0] == dicts[1] and dicts[0]  # joined dictionary
    for split in ("train", "valid", "test"):
        for lang in (fixture.src, fixture.tgt):
            assert (data_bin / f"{split}.{pair}.{lang}.bin").is_file() and (data_bin / f"{split}.{pair}.{lang}.idx").is_file()
    expected = {"train": fixture.n_train_kept, "valid": len(fixture.valid), "test": len(fixture.test)}
    for split, n in expected.items():
        assert n_sentences(data_bin, split, pair, fixture.src) == n_sentences(data_bin, split, pair, fixture.tgt) == n
    assert (out / "text" / "train.en").read_text().count("\n") == fixture.n_train_total

    # Raw references, in the recipe's concatenation order, and the model that decodes pieces.
    for split in ("valid", "test"):
        pairs = getattr(fixture, split)
        assert (data_bin / f"{split}.raw.{fixture.src}").read_text() == "".join(s + "\n" for s, _ in pairs)
        assert (data_bin / f"{split}.raw.{fixture.tgt}").read_text() == "".join(t + "\n" for _, t in pairs)
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(data_bin / "spm.model"))
    pieces = (out / "spm" / f"test.{fixture.tgt}").read_text().splitlines()
    assert [sp.decode_pieces(p.split()) for p in pieces] == [t for _, t in fixture.test]

    mtimes = {p: p.stat().st_mtime_ns for p in data_bin.iterdir()}
    second = run_recipe(name, tmp_path / "raw", out, "--vocab-size", "120")
    assert second.returncode == 0, second.stderr
    assert [line.split()[2] for line in second.stdout.splitlines() if line.split()[1:2] == ["skip"]] == STEPS
    assert {p: p.stat().st_mtime_ns for p in data_bin.iterdir()} == mtimes


def test_changed_vocab_size_redoes_spm_and_later_steps(tmp_path: Path) -> None:
    multi30k().write(tmp_path / "raw")
    assert run_recipe("multi30k", tmp_path / "raw", tmp_path / "out", "--vocab-size", "120").returncode == 0
    again = run_recipe("multi30k", tmp_path / "raw", tmp_path / "out", "--vocab-size", "100")
    assert again.returncode == 0, again.stderr
    ran = [line.split()[2] for line in again.stdout.splitlines() if line.split()[1:2] == ["run"]]
    assert ran == ["spm-train", "spm-encode", "binarize", "references"]
    assert (tmp_path / "out" / "data-bin" / "spm.vocab").read_text().count("\n") == 100


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_corrupt_archive_fails_with_one_line(tmp_path: Path) -> None:
    wmt14en2de().write(tmp_path / "raw")
    archive = tmp_path / "raw" / "training-parallel-commoncrawl.tgz"
    archive.write_bytes(archive.read_bytes()[:100])  # truncated download
    line = one_error_line(run_recipe("wmt14en2de", tmp_path / "raw", tmp_path / "out"))
    assert f"corrupt archive {archive}" in line and "commoncrawl.de-en.en" in line


def test_archive_without_expected_member_fails_with_one_line(tmp_path: Path) -> None:
    fixture = wmt16en2ro()
    del fixture.archives["test.tgz"]["test/newstest2016-enro-ref.ro.sgm"]
    fixture.write(tmp_path / "raw")
    line = one_error_line(run_recipe("wmt16en2ro", tmp_path / "raw", tmp_path / "out"))
    assert line == f"error: archive {tmp_path / 'raw' / 'test.tgz'} lacks expected member test/newstest2016-enro-ref.ro.sgm"


def test_missing_archive_fails_with_one_line(tmp_path: Path) -> None:
    wmt14en2fr().write(tmp_path / "raw")
    (tmp_path / "raw" / "training-giga-fren.tar").unlink()
    line = one_error_line(run_recipe("wmt14en2fr", tmp_path / "raw", tmp_path / "out"))
    assert line == (
        f"error: missing archive {tmp_path / 'raw' / 'training-giga-fren.tar'} "
        "(expected the download of http://statmt.org/wmt10/training-giga-fren.tar)"
    )


def test_misaligned_corpus_fails_with_one_line_naming_the_pair(tmp_path: Path) -> None:
    fixture = wmt14en2de()
    members = fixture.archives["training-parallel-nc-v9.tgz"]
    members["training/news-commentary-v9.de-en.de"] += b"Eine Zeile zu viel.\n"
    fixture.write(tmp_path / "raw")
    line = one_error_line(run_recipe("wmt14en2de", tmp_path / "raw", tmp_path / "out"))
    orig = tmp_path / "out" / "orig" / "training" / "news-commentary-v9.de-en"
    assert line == f"error: line count mismatch: {orig}.en has 63 lines, {orig}.de has 64"


def test_corrupt_gzip_file_fails_with_one_line(tmp_path: Path) -> None:
    multi30k().write(tmp_path / "raw")
    (tmp_path / "raw" / "val.de.gz").write_bytes(b"not gzip")
    line = one_error_line(run_recipe("multi30k", tmp_path / "raw", tmp_path / "out"))
    assert line.startswith(f"error: corrupt file {tmp_path / 'raw' / 'val.de.gz'} (expected UTF-8 text, gzipped)")


def test_bad_option_fails_with_one_line(tmp_path: Path) -> None:
    line = one_error_line(run_recipe("multi30k", tmp_path, tmp_path / "out", "--vocab-size", "0"))
    assert line == "error: --vocab-size must be a positive integer, got '0'"


@pytest.mark.slow
@pytest.mark.skipif(not MULTI30K.is_dir(), reason="needs ../shared/data/multi30k")
def test_multi30k_real_data(tmp_path: Path) -> None:
    result = run_recipe("multi30k", MULTI30K, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    data_bin = tmp_path / "out" / "data-bin"
    counts = {split: n_sentences(data_bin, split, "en-de", "de") for split in ("train", "valid", "test")}
    assert counts == {"train": 29000, "valid": 1014, "test": 1000}  # the README's line counts
    assert len((data_bin / "dict.en.txt").read_text().splitlines()) <= 8000
    assert (data_bin / "test.raw.de").read_text().count("\n") == 1000
