"""A generated English->German toy corpus: the embedded default of `make demo` and of the tests.

Sentences come from a small grammar (determiner, number, adjective, noun, verb, object, optional
"will ... " future that moves the German verb to the end), translated by rule, so a model must
learn a lexicon, agreement and one reordering. Generated here, so it ships under the project's
own licence and needs no download.
"""
from __future__ import annotations

import random
from pathlib import Path

from ..venv_commands import VENV_BIN, run_venv_command

NOUNS = {  # english singular, english plural, german singular (with article), german plural
    "dog": ("dogs", "der hund", "hunde"), "cat": ("cats", "die katze", "katzen"),
    "child": ("children", "das kind", "kinder"), "man": ("men", "der mann", "männer"),
    "woman": ("women", "die frau", "frauen"), "bird": ("birds", "der vogel", "vögel"),
    "horse": ("horses", "das pferd", "pferde"), "girl": ("girls", "das mädchen", "mädchen"),
    "boy": ("boys", "der junge", "jungen"), "car": ("cars", "das auto", "autos"),
    "ball": ("balls", "der ball", "bälle"), "book": ("books", "das buch", "bücher"),
}
ADJECTIVES = {"red": "rot", "small": "klein", "big": "groß", "old": "alt", "young": "jung", "happy": "glücklich",
              "black": "schwarz", "white": "weiß"}
VERBS = {  # english 3sg, english plural, german 3sg, german plural, german infinitive
    "sees": ("see", "sieht", "sehen", "sehen"), "likes": ("like", "mag", "mögen", "mögen"),
    "finds": ("find", "findet", "finden", "finden"), "holds": ("hold", "hält", "halten", "halten"),
    "carries": ("carry", "trägt", "tragen", "tragen"), "follows": ("follow", "folgt", "folgen", "folgen"),
}
NUMBERS = {"two": "zwei", "three": "drei", "four": "vier", "five": "fünf"}
ADJ_ENDING = {"der": "e", "die": "e", "das": "e"}  # weak ending after a definite article
ACCUSATIVE = {"der": "den", "die": "die", "das": "das"}


def _noun_phrase(rng: random.Random, accusative: bool) -> tuple[str, str, bool]:
    """(english, german, plural) for a random noun phrase."""
    noun = rng.choice(list(NOUNS))
    en_plural, de_singular, de_plural = NOUNS[noun]
    adjective = rng.choice([None, *ADJECTIVES]) if rng.random() < 0.6 else None
    if rng.random() < 0.35:
        number = rng.choice(list(NUMBERS))
        en = f"{number} {adjective + ' ' if adjective else ''}{en_plural}"
        de = f"{NUMBERS[number]} {ADJECTIVES[adjective] + 'e ' if adjective else ''}{de_plural}"
        return en, de, True
    article, de_noun = de_singular.split()
    if accusative:
        article = ACCUSATIVE[article]
    de_adjective = ""
    if adjective:
        ending = "en" if accusative and article == "den" else ADJ_ENDING[de_singular.split()[0]]
        de_adjective = ADJECTIVES[adjective] + ending + " "
    return f"the {adjective + ' ' if adjective else ''}{noun}", f"{article} {de_adjective}{de_noun}", False


def sentence_pair(rng: random.Random) -> tuple[str, str]:
    subject_en, subject_de, plural = _noun_phrase(rng, accusative=False)
    object_en, object_de, _ = _noun_phrase(rng, accusative=True)
    verb = rng.choice(list(VERBS))
    en_plural_verb, de_3sg, de_plural_verb, de_infinitive = VERBS[verb]
    if rng.random() < 0.3:  # future: the German infinitive moves to the end
        auxiliary = "werden" if plural else "wird"
        return f"{subject_en} will {en_plural_verb} {object_en} .", f"{subject_de} {auxiliary} {object_de} {de_infinitive} ."
    en_verb = en_plural_verb if plural else verb
    de_verb = de_plural_verb if plural else de_3sg
    return f"{subject_en} {en_verb} {object_en} .", f"{subject_de} {de_verb} {object_de} ."


def write_toy_corpus(out_dir: str | Path, train: int = 2000, valid: int = 200, test: int = 200, seed: int = 1) -> Path:
    """Write {train,valid,test}.{en,de} (one sentence per line); held-out splits exclude train sentences."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    seen: set[str] = set()
    for split, count in (("train", train), ("valid", valid), ("test", test)):
        pairs = []
        while len(pairs) < count:
            en, de = sentence_pair(rng)
            if split != "train" and en in seen:
                continue
            if split == "train":
                seen.add(en)
            pairs.append((en, de))
        (out / f"{split}.en").write_text("".join(en + "\n" for en, _ in pairs))
        (out / f"{split}.de").write_text("".join(de + "\n" for _, de in pairs))
    return out


def binarized_toy_corpus(root: str | Path, train: int, valid: int = 60, test: int = 60) -> Path:
    """The toy corpus written to ROOT/raw and binarized by ``fairseq-preprocess`` (joined dictionary) into ROOT/bin."""
    root = Path(root)
    raw = write_toy_corpus(root / "raw", train=train, valid=valid, test=test)
    proc = run_venv_command([
        VENV_BIN / "fairseq-preprocess", "--source-lang", "en", "--target-lang", "de", "--trainpref", raw / "train",
        "--validpref", raw / "valid", "--testpref", raw / "test", "--destdir", root / "bin", "--joined-dictionary",
        "--workers", "1",
    ], cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"fairseq-preprocess failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return root / "bin"
