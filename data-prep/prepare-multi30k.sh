#!/usr/bin/env bash
# Multi30k (task 1) English-German: train, val as valid, test_2016_flickr as test; the gzipped
# raw files of github.com/multi30k/dataset (e.g. --raw-dir ../shared/data/multi30k).
# Usage: see --help.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RECIPE=prepare-multi30k SRC=en TGT=de DEFAULT_VOCAB=8000 TEXT_BASE=raw
# Captions are short (3-30 words), where the WMT ratio of 1.5 would drop 3% of good pairs;
# 9 is Moses clean-corpus-n's own default and only drops garbage.
CLEAN_RATIO=9
URL=https://github.com/multi30k/dataset/raw/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw
ARCHIVES=()
for split in train val test_2016_flickr; do
    for lang in "$SRC" "$TGT"; do ARCHIVES+=("$split.$lang.gz $URL/$split.$lang.gz"); done
done
TRAIN=("train.en.gz:train.de.gz")
VALID=("val.en.gz:val.de.gz")
TEST=("test_2016_flickr.en.gz:test_2016_flickr.de.gz")

run_recipe "$@"
