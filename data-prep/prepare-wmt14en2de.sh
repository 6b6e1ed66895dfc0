#!/usr/bin/env bash
# WMT'14 English-German: Europarl v7 + Common Crawl + News Commentary v9 for training (the
# corpora of fairseq's examples/translation/prepare-wmt14en2de.sh), newstest2013 valid,
# newstest2014 test. Usage: see --help.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RECIPE=prepare-wmt14en2de SRC=en TGT=de DEFAULT_VOCAB=32000 TEXT_BASE=orig
ARCHIVES=(
    "training-parallel-europarl-v7.tgz http://statmt.org/wmt13/training-parallel-europarl-v7.tgz training/europarl-v7.de-en.en training/europarl-v7.de-en.de"
    "training-parallel-commoncrawl.tgz http://statmt.org/wmt13/training-parallel-commoncrawl.tgz commoncrawl.de-en.en commoncrawl.de-en.de"
    "training-parallel-nc-v9.tgz http://statmt.org/wmt14/training-parallel-nc-v9.tgz training/news-commentary-v9.de-en.en training/news-commentary-v9.de-en.de"
    "dev.tgz http://statmt.org/wmt14/dev.tgz dev/newstest2013.en dev/newstest2013.de"
    "test-full.tgz http://statmt.org/wmt14/test-full.tgz test-full/newstest2014-deen-src.en.sgm test-full/newstest2014-deen-ref.de.sgm"
)
TRAIN=("$(pair_of training/europarl-v7.de-en)" "$(pair_of commoncrawl.de-en)" "$(pair_of training/news-commentary-v9.de-en)")
VALID=("$(pair_of dev/newstest2013)")
TEST=("test-full/newstest2014-deen-src.en.sgm:test-full/newstest2014-deen-ref.de.sgm")

run_recipe "$@"
