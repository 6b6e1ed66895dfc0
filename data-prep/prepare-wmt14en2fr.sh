#!/usr/bin/env bash
# WMT'14 English-French: Europarl v7 + Common Crawl + UN + News Commentary v9 + Gigaword
# (the corpora of fairseq's examples/translation/prepare-wmt14en2fr.sh), newstest2012 +
# newstest2013 valid, newstest2014 test. Usage: see --help.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RECIPE=prepare-wmt14en2fr SRC=en TGT=fr DEFAULT_VOCAB=32000 TEXT_BASE=orig
ARCHIVES=(
    "training-parallel-europarl-v7.tgz http://statmt.org/wmt13/training-parallel-europarl-v7.tgz training/europarl-v7.fr-en.en training/europarl-v7.fr-en.fr"
    "training-parallel-commoncrawl.tgz http://statmt.org/wmt13/training-parallel-commoncrawl.tgz commoncrawl.fr-en.en commoncrawl.fr-en.fr"
    "training-parallel-un.tgz http://statmt.org/wmt13/training-parallel-un.tgz un/undoc.2000.fr-en.en un/undoc.2000.fr-en.fr"
    "training-parallel-nc-v9.tgz http://statmt.org/wmt14/training-parallel-nc-v9.tgz training/news-commentary-v9.fr-en.en training/news-commentary-v9.fr-en.fr"
    "training-giga-fren.tar http://statmt.org/wmt10/training-giga-fren.tar giga-fren.release2.fixed.en.gz giga-fren.release2.fixed.fr.gz"
    "dev.tgz http://statmt.org/wmt14/dev.tgz dev/newstest2012.en dev/newstest2012.fr dev/newstest2013.en dev/newstest2013.fr"
    "test-full.tgz http://statmt.org/wmt14/test-full.tgz test-full/newstest2014-fren-src.en.sgm test-full/newstest2014-fren-ref.fr.sgm"
)
TRAIN=(
    "$(pair_of training/europarl-v7.fr-en)" "$(pair_of commoncrawl.fr-en)" "$(pair_of un/undoc.2000.fr-en)"
    "$(pair_of training/news-commentary-v9.fr-en)" "giga-fren.release2.fixed.en.gz:giga-fren.release2.fixed.fr.gz"
)
VALID=("$(pair_of dev/newstest2012)" "$(pair_of dev/newstest2013)")
TEST=("test-full/newstest2014-fren-src.en.sgm:test-full/newstest2014-fren-ref.fr.sgm")

run_recipe "$@"
