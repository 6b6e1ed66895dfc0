# Shared body of the data-prep recipes; sourced by prepare-*.sh, which set:
#   RECIPE, SRC, TGT, DEFAULT_VOCAB, and optionally CLEAN_RATIO (default 1.5)
#   ARCHIVES  "NAME URL [MEMBER...]": files to fetch into the raw dir; MEMBERs are extracted
#             from tar/tgz/zip archives into OUT/orig (no MEMBER: the file is used as it is)
#   TEXT_BASE "orig" (extracted members) or "raw" (fetched files): where split files live
#   TRAIN, VALID, TEST  "SRCFILE:TGTFILE" pairs relative to TEXT_BASE, concatenated per split
# and then call `run_recipe "$@"`. Each step leaves a stamp in OUT/.stamps and is skipped on
# re-run; redoing a step (changed settings, removed stamp) redoes every later step too.
set -euo pipefail

PREP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "error: $*" >&2; exit 1; }
log() { echo "[$RECIPE] $*"; }

usage() {
    cat <<EOF
usage: $RECIPE.sh --out DIR [--raw-dir DIR] [--vocab-size N] [--workers N]

Builds OUT/data-bin ($SRC-$TGT, fairseq-preprocess --joined-dictionary over a joint
sentencepiece model) plus spm.model and the raw valid/test text for sacreBLEU.
  --out DIR         output folder (created; finished steps are skipped on re-run)
  --raw-dir DIR     use archives already downloaded into DIR; nothing is downloaded
                    (default: download into OUT/raw)
  --vocab-size N    joint sentencepiece vocabulary size (default $DEFAULT_VOCAB)
  --workers N       threads for sentencepiece and fairseq-preprocess (default: all cores)
EOF
}

# pair_of PREFIX: "PREFIX.SRC:PREFIX.TGT", the usual naming of an aligned corpus.
pair_of() { echo "$1.$SRC:$1.$TGT"; }

parse_args() {
    RAW_DIR="" OUT="" VOCAB_SIZE="$DEFAULT_VOCAB" WORKERS="$(nproc)"
    while (($#)); do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --raw-dir | --out | --vocab-size | --workers)
                (($# >= 2)) || die "$1 needs a value (see --help)"
                case "$1" in
                    --raw-dir) RAW_DIR="$2" ;;
                    --out) OUT="$2" ;;
                    --vocab-size) VOCAB_SIZE="$2" ;;
                    --workers) WORKERS="$2" ;;
                esac
                shift 2 ;;
            *) die "unknown argument $1 (see --help)" ;;
        esac
    done
    [[ -n "$OUT" ]] || die "--out DIR is required (see --help)"
    [[ "$VOCAB_SIZE" =~ ^[1-9][0-9]*$ ]] || die "--vocab-size must be a positive integer, got '$VOCAB_SIZE'"
    [[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "--workers must be a positive integer, got '$WORKERS'"
    if [[ -n "$RAW_DIR" ]]; then
        [[ -d "$RAW_DIR" ]] || die "--raw-dir $RAW_DIR is not a directory"
        DOWNLOAD=0
    else
        RAW_DIR="$OUT/raw"
        DOWNLOAD=1
    fi
}

find_tools() {
    # The project's venv (make demo / make test create it) first, then whatever is on PATH.
    FAIRSEQ_PREPROCESS="$PREP_DIR/../.venv/bin/fairseq-preprocess"
    [[ -x "$FAIRSEQ_PREPROCESS" ]] || FAIRSEQ_PREPROCESS="$(command -v fairseq-preprocess)" \
        || die "fairseq-preprocess not found: run 'make venv' in $(cd "$PREP_DIR/.." && pwd) first (it creates .venv/)"
    # The python next to fairseq-preprocess is the venv's, which has sentencepiece.
    PYTHON="${PYTHON:-$(dirname "$FAIRSEQ_PREPROCESS")/python}"
    [[ -x "$PYTHON" ]] || PYTHON="python3"
}

prep_py() { "$PYTHON" "$PREP_DIR/prep_util.py" "$@"; }

# step NAME KEY CMD...: run CMD unless OUT/.stamps/NN-NAME holds KEY from a finished run.
step() {
    local name="$1" key="$2"
    shift 2
    STEP_NO=$((STEP_NO + 1))
    local stamp
    stamp="$OUT/.stamps/$(printf %02d "$STEP_NO")-$name"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
        log "skip $name (already done)"
        return
    fi
    local s n
    for s in "$OUT"/.stamps/*; do
        n="${s##*/}"
        n="${n%%-*}"
        if [[ -f "$s" && "$n" =~ ^[0-9]+$ ]] && ((10#$n >= STEP_NO)); then rm -f "$s"; fi
    done
    log "run $name"
    "$@"
    mkdir -p "$OUT/.stamps"
    printf '%s' "$key" >"$stamp"
}

download() {
    local url="$1" dest="$2"
    if command -v wget >/dev/null; then
        wget -q -O "$dest.part" "$url" || die "download of $url failed"
    elif command -v curl >/dev/null; then
        curl -fsSL -o "$dest.part" "$url" || die "download of $url failed"
    else
        die "neither wget nor curl is installed: download $url into $(dirname "$dest") and pass --raw-dir"
    fi
    mv "$dest.part" "$dest"
}

fetch_archives() {
    local spec name url
    mkdir -p "$RAW_DIR"
    for spec in "${ARCHIVES[@]}"; do
        read -r name url _ <<<"$spec"
        [[ -f "$RAW_DIR/$name" ]] && continue
        ((DOWNLOAD)) || die "missing archive $RAW_DIR/$name (expected the download of $url)"
        log "download $url"
        download "$url" "$RAW_DIR/$name"
    done
}

extract_archives() {
    local spec name url members
    for spec in "${ARCHIVES[@]}"; do
        read -r name url members <<<"$spec"
        [[ -n "$members" ]] || continue
        # shellcheck disable=SC2086  # members are space-separated paths without spaces
        prep_py extract "$RAW_DIR/$name" "$OUT/orig" $members
    done
}

# gather_split SPLIT PAIR...: concatenate the aligned PAIRs into OUT/text/SPLIT.{SRC,TGT}.
gather_split() {
    local split="$1" base pair
    shift
    base="$OUT/orig"
    [[ "$TEXT_BASE" == raw ]] && base="$RAW_DIR"
    local pairs=()
    for pair in "$@"; do pairs+=("$base/${pair%%:*}:$base/${pair#*:}"); done
    prep_py gather "$OUT/text/$split.$SRC" "$OUT/text/$split.$TGT" "${pairs[@]}"
}

gather_splits() {
    gather_split train "${TRAIN[@]}"
    gather_split valid "${VALID[@]}"
    gather_split test "${TEST[@]}"
}

spm_encode_all() {
    local pairs=() split lang
    for split in train valid test; do
        for lang in "$SRC" "$TGT"; do
            local in="$OUT/clean/$split.$lang"
            [[ "$split" == train ]] || in="$OUT/text/$split.$lang"
            pairs+=("$in:$OUT/spm/$split.$lang")
        done
    done
    prep_py spm-encode "$OUT/spm/spm.model" "${pairs[@]}" --threads "$WORKERS"
}

binarize() {
    rm -rf "$OUT/data-bin" "$OUT/data-bin.tmp"
    "$FAIRSEQ_PREPROCESS" --source-lang "$SRC" --target-lang "$TGT" --joined-dictionary \
        --trainpref "$OUT/spm/train" --validpref "$OUT/spm/valid" --testpref "$OUT/spm/test" \
        --destdir "$OUT/data-bin.tmp" --workers "$WORKERS"
    mv "$OUT/data-bin.tmp" "$OUT/data-bin"
}

# The scorer decodes with --post-process sentencepiece and compares against these raw files.
copy_references() {
    local split lang
    cp "$OUT/spm/spm.model" "$OUT/spm/spm.vocab" "$OUT/data-bin/"
    for split in valid test; do
        for lang in "$SRC" "$TGT"; do
            cp "$OUT/text/$split.$lang" "$OUT/data-bin/$split.raw.$lang"
        done
    done
}

run_recipe() {
    parse_args "$@"
    find_tools
    mkdir -p "$OUT"
    STEP_NO=0
    log "raw dir $RAW_DIR, out $OUT, vocab $VOCAB_SIZE, workers $WORKERS"
    step fetch "$RAW_DIR" fetch_archives
    step extract "$RAW_DIR" extract_archives
    step gather "" gather_splits
    step clean "ratio=${CLEAN_RATIO:-1.5}" prep_py clean "$OUT/text/train.$SRC" "$OUT/text/train.$TGT" \
        "$OUT/clean/train.$SRC" "$OUT/clean/train.$TGT" --min-len 1 --max-len 250 --ratio "${CLEAN_RATIO:-1.5}"
    step spm-train "vocab=$VOCAB_SIZE" prep_py spm-train "$OUT/spm/spm" \
        "$OUT/clean/train.$SRC" "$OUT/clean/train.$TGT" --vocab-size "$VOCAB_SIZE" --threads "$WORKERS"
    step spm-encode "" spm_encode_all
    step binarize "" binarize
    step references "" copy_references
    log "finished: $OUT/data-bin (spm.model, {valid,test}.raw.{$SRC,$TGT} for sacreBLEU)"
}
