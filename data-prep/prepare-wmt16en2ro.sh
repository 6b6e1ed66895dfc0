#!/usr/bin/env bash
# WMT'16 English-Romanian: Europarl v7 + SETIMES2 for training (the corpora of the WMT'16
# task and of rsennrich/wmt16-scripts), newsdev2016 valid, newstest2016 test. Usage: see --help.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RECIPE=prepare-wmt16en2ro SRC=en TGT=ro DEFAULT_VOCAB=32000 TEXT_BASE=orig
ARCHIVES=(
    "ro-en.tgz http://www.statmt.org/europarl/v7/ro-en.tgz europarl-v7.ro-en.en europarl-v7.ro-en.ro"
    "en-ro.txt.zip https://object.pouta.csc.fi/OPUS-SETIMES/v2/moses/en-ro.txt.zip SETIMES.en-ro.en SETIMES.en-ro.ro"
    "dev.tgz http://data.statmt.org/wmt16/translation-task/dev.tgz dev/newsdev2016-enro-src.en.sgm dev/newsdev2016-enro-ref.ro.sgm"
    "test.tgz http://data.statmt.org/wmt16/translation-task/test.tgz test/newstest2016-enro-src.en.sgm test/newstest2016-enro-ref.ro.sgm"
)
TRAIN=("$(pair_of europarl-v7.ro-en)" "$(pair_of SETIMES.en-ro)")
VALID=("dev/newsdev2016-enro-src.en.sgm:dev/newsdev2016-enro-ref.ro.sgm")
TEST=("test/newstest2016-enro-src.en.sgm:test/newstest2016-enro-ref.ro.sgm")

run_recipe "$@"
