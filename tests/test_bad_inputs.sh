#!/bin/bash
# test_bad_inputs.sh: every bad input of tests/README.md's reliability table, each with a time
# limit: the documented exit status, a message naming the file, key or row, and the results
# of an earlier run left intact.
#
#   tests/test_bad_inputs.sh TRAINER_BINARY SOURCE_DIR        (CTest label `reliability`)
#
# Needs root for the disk-full cases (a small tmpfs) and the permission cases (run as
# `nobody`); without root those cases are reported as skipped, the others still run.
set -uo pipefail

T=$(realpath "$1")
SRC=$(realpath "$2")
MOONS=$SRC/datasets/configs/moons.ini
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d /tmp/trainer-bad.XXXXXX)
chmod 755 "$W"
cd "$W" || exit 1
mounted=()
cleanup() {
    for m in "${mounted[@]}"; do umount "$m" 2>/dev/null; done
    [[ $failures -eq 0 ]] && rm -rf "$W"
}
failures=0
trap cleanup EXIT
is_root=0
[[ $(id -u) -eq 0 ]] && is_root=1

source "$SRC/tests/expect.sh"
# the command lines the cases extend (arrays, so that `timeout` can run them)
train=("$T" train "$MOONS" --set train.epochs=4 --set train.eval_every=2)
csv=("${train[@]}" --set data.generator=) # then --set data.path=FILE

# an earlier run whose files must survive every failure below
"${train[@]}" --set output.dir="$W/prev" >/dev/null 2>&1 || { echo "FAIL: the baseline run failed"; exit 1; }
before=$(sums "$W/prev")

# ---- configuration --------------------------------------------------------------------------
printf '[model]\nlayers = 2, 4, 1\noutput_activation = sigmoid\n[train]\nloss = bce\nepochs = ten\n' >bad_type.ini
expect "wrong type in the file" 2 "bad_type.ini:6: [train] epochs = ten: not an integer" -- "$T" train bad_type.ini
expect "wrong type in --set" 2 "[train] lr = fast: not a finite number" -- "${train[@]}" --set train.lr=fast
expect "unknown key" 2 "unknown key" -- "${train[@]}" --set train.learning_rate=0.1
expect "missing config file" 2 "no-such.ini" -- "$T" train "$W/no-such.ini"
mkdir -p a_dir.ini
expect "config that is a directory" 2 "a_dir.ini: is a directory" -- "$T" train a_dir.ini
head -c 2000 /dev/urandom >binary.ini
expect "binary config file" 2 "binary.ini" -- "$T" train binary.ini

# a test hook (README "Environment") set to a malformed value is refused, not ignored
expect "malformed test hook" 2 "TRAINER_FAULT_NAN=1:x: expected two non-negative integers" -- \
  env TRAINER_FAULT_NAN=1:x "${train[@]}" --set output.dir="$W/hook"
expect "unknown MPI fault site" 2 "TRAINER_FAULT_MPI=cross-sum: expected cross_sum or sync_buffers" -- \
  env TRAINER_FAULT_MPI=cross-sum "${train[@]}" --set output.dir="$W/hook"
expect "a checkpoint pause that never comes" 2 "TRAINER_TEST_CKPT_PAUSE=0:30: N:SECONDS counts writes from 1" -- \
  env TRAINER_TEST_CKPT_PAUSE=0:30 "${train[@]}" --set output.dir="$W/hook"
expect "unknown vector-math path" 2 "TRAINER_VMATH=avx1024: not a path this CPU runs" -- \
  env TRAINER_VMATH=avx1024 "${train[@]}" --set output.dir="$W/hook"
expect "a vector-math path that exists" 0 "" -- env TRAINER_VMATH=scalar "${train[@]}" --set output.dir="$W/hook"

# ---- data -------------------------------------------------------------------------------------
expect "missing data file" 3 "/no/such/data.csv: cannot open: No such file or directory" -- \
    "${csv[@]}" --set data.path=/no/such/data.csv --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,0.2,0\nnan,0.3,1\n0.5,0.6,1\n' >nan.csv
expect "NaN feature" 3 "nan.csv:3: column 1 ('x0'): nan is not a finite float" -- "${csv[@]}" --set data.path=nan.csv --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,0.2,0\n0.3,inf,1\n0.5,0.6,1\n' >inf.csv
expect "infinite feature" 3 "inf.csv:3: column 2 ('x1'): inf is not a finite float" -- "${csv[@]}" --set data.path=inf.csv --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,0.2,0\n0.3,0.4,1\n0.5,0.6,7\n' >label.csv
expect "label out of range (cross_entropy)" 3 "class label 7 is outside [0, 3)" -- \
    "${csv[@]}" --set data.path=label.csv --set model.layers=2,4,3 --set model.output_activation=identity --set train.loss=cross_entropy \
    --set data.test_fraction=0 --set output.dir="$W/r"
expect "label out of range (bce)" 3 "target 7 of a bce loss must be in [0, 1]" -- \
    "${csv[@]}" --set data.path=label.csv --set data.test_fraction=0 --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,zero,1\n' >word.csv  # a word in a feature column (a label column of words names classes)
expect "text in a number column" 3 "word.csv:2" -- "${csv[@]}" --set data.path=word.csv --set data.test_fraction=0 --set output.dir="$W/r"
printf 'x0,x1,y\n' >zero.csv
expect "zero data rows" 3 "zero.csv: no data rows" -- "${csv[@]}" --set data.path=zero.csv --set output.dir="$W/r"
printf 'x0,x1,y\n0.1,0.2,1\n' >one.csv
expect "one row split into train and test" 3 "no training rows left after the split" -- \
    "${csv[@]}" --set data.path=one.csv --set output.dir="$W/r"
expect "one row, no split: trains" 0 "" -- "${csv[@]}" --set data.path=one.csv --set data.test_fraction=0 --set output.dir="$W/one"
expect "batch larger than the data: trains" 0 "" -- "${train[@]}" --set data.n=40 --set train.batch_size=1000 \
    --set output.dir="$W/bigbatch"
check "  one optimizer step per epoch with batch > rows" grep -q "step 4 " "$W/out.txt"
expect "more ranks than rows (3 ranks, 1 row): trains" 0 "" -- \
    mpirun -np 3 "$T" train "$MOONS" --set train.epochs=2 --set data.generator= --set data.path=one.csv \
    --set data.test_fraction=0 --set output.dir="$W/ranks"
head -c 4096 /dev/urandom >junk.h5
expect "corrupt HDF5 data file" 3 "junk.h5: not an HDF5 file" -- "${csv[@]}" --set data.path=junk.h5 --set output.dir="$W/r"
"$T" data gen moons --out good.h5 --n 100 >/dev/null
head -c 3000 good.h5 >truncated.h5
expect "truncated HDF5 data file" 3 "truncated.h5" -- "${csv[@]}" --set data.path=truncated.h5 --set output.dir="$W/r"
expect "HDF5 data without the dataset" 3 "/features_here" -- "${csv[@]}" --set data.path=good.h5 --set data.features=/features_here \
    --set output.dir="$W/r"

# every parsed list, table and number is strict; every message names the real cause (issue 27,
# class 4)
expect "a width too large" 2 "width 1 ('200000000') is too large (at most 100000000)" -- \
    "${train[@]}" --set model.layers=2,200000000,1
expect "a seed beyond 64 bits" 2 "seed = 99999999999999999999: too large" -- \
    "${train[@]}" --set train.seed=99999999999999999999
expect "an empty list item" 2 "layers = 2,,1: an empty item" -- "${train[@]}" --set model.layers=2,,1
expect "a trailing comma" 2 "an empty item" -- "${train[@]}" --set model.layers=2,4,1,
expect "class weights all zero" 2 "at least one class weight must be positive" -- \
    "${train[@]}" --set train.class_weights=0,0
expect "bn_eps = 0" 2 "[model] bn_eps = 0: must be between" -- "${train[@]}" --set model.bn_eps=0
expect "data gen --n -5 names the option" 2 "--n -5: must be between" -- "$T" data gen moons --n -5 --out g.csv
check "  and no --set the user never gave" bash -c "! grep -q -- '--set' '$W/err.txt'"
expect "data gen with an unknown option" 2 "unknown option --colour" -- "$T" data gen moons --colour red --out g.csv
printf '\xef\xbb\xbfx0,x1,y\n0.1,0.2,0\n0.3,0.4,1\n0.5,0.1,1\n' >bom.csv
expect "a CSV with a UTF-8 byte order mark: its first column is x0" 0 "" -- \
    "${csv[@]}" --set data.path=bom.csv --set data.columns=x0,x1 --set data.target=y --set data.test_fraction=0 \
    --set output.dir="$W/bom"
printf 'x0,x0,y\n0.1,0.2,0\n0.3,0.4,1\n' >dup.csv
expect "duplicated column names" 3 "dup.csv:1: columns 1 and 2 are both named 'x0'" -- \
    "${csv[@]}" --set data.path=dup.csv --set output.dir="$W/r"
printf 'x0,,y\n0.1,0.2,0\n0.3,0.4,1\n' >noname.csv
expect "an empty column name" 3 "noname.csv:1: column 2 has no name" -- \
    "${csv[@]}" --set data.path=noname.csv --set output.dir="$W/r"
printf '0.1,0.2,0\n0.3,0.4,1\n0.5,0.1,1\n' >noheader.csv
expect "numbers where the header is expected" 3 "the first line holds numbers, not column names" -- \
    "${csv[@]}" --set data.path=noheader.csv --set output.dir="$W/r"
expect "... read with header = false" 0 "" -- "${csv[@]}" --set data.path=noheader.csv --set data.header=false \
    --set data.test_fraction=0 --set output.dir="$W/noheader"
printf 'x0;x1;y\n1,234;0.2;0\n0.3;0.4;1\n' >thousands.csv
expect "a thousands separator" 3 "thousands.csv:2: column 1 ('x0'): '1,234' is not a number" -- \
    "${csv[@]}" --set data.path=thousands.csv --set output.dir="$W/r"
"$T" data gen moons --out locked.h5 --n 300 >/dev/null
/usr/bin/python3 - "$T" "$MOONS" "$W" <<'PY'
import subprocess, sys, h5py
T, moons, W = sys.argv[1:]
with h5py.File("locked.h5", "a"):  # another process holds it open for writing
    r = subprocess.run([T, "train", moons, "--set", "data.generator=", "--set", "data.path=locked.h5",
                        "--set", f"output.dir={W}/r"], capture_output=True, text=True, timeout=60)
ok = r.returncode == 3 and "locked by another process" in r.stderr
print(("ok   " if ok else "FAIL ") + "an HDF5 file another process writes: " + r.stderr.strip()[-160:])
sys.exit(0 if ok else 1)
PY
[[ $? -eq 0 ]] || failures=$((failures + 1))
expect "bench on a config that reads a data file" 0 "" -- "$T" bench "$W/bom/config.ini" --steps 5
# ---- checkpoints and the run directory -------------------------------------------------------
expect "architecture mismatch on resume" 4 "the architecture differs from the configuration; layers 2,20,20,1" -- \
    "${train[@]}" --set output.dir="$W/prev" --set output.resume=auto --set model.layers=2,8,1
# a run never trains or evaluates something other than what it says (issue 27, class 3)
small=("${train[@]}" --set data.n=200 --set train.batch_size=8 --set train.epochs=2)
TRAINER_TEST_SIGNAL_AT_STEP=0:5 "${small[@]}" --set output.dir=mid >/dev/null 2>&1 # 40 rows of epoch 1
for b in 80 20 4; do rm -rf "mid$b" && cp -r mid "mid$b"; done
expect "mid-epoch resume at a batch size the rows done do not divide" 2 "saved after 40 rows of epoch 1" -- \
    "${small[@]}" --set train.batch_size=80 --resume mid80 --set output.dir=mid80
expect "mid-epoch resume at batch 20: continues at row 40" 0 "" -- \
    "${small[@]}" --set train.batch_size=20 --resume mid20 --set output.dir=mid20
check "  5 + 6 + 8 steps" grep -q "trained 2 epochs (19 steps)" "$W/out.txt"
expect "mid-epoch resume at batch 4: continues at row 40" 0 "" -- \
    "${small[@]}" --set train.batch_size=4 --resume mid4 --set output.dir=mid4
check "  5 + 30 + 40 steps" grep -q "trained 2 epochs (75 steps)" "$W/out.txt"
expect "mid-epoch resume with another seed (another order)" 2 "[train] seed = 0 there and 7 now" -- \
    "${small[@]}" --set train.seed=7 --resume mid --set output.dir=mid
"$T" data gen moons --out named.csv --n 300 >/dev/null # columns x0, x1, y
"${csv[@]}" --set data.path=named.csv --set output.dir=named_run >/dev/null 2>&1
printf 'x1,x0\n0.5,1.0\n' >swapped.csv && printf 'x0,x1\n1.0,0.5\n' >ordered.csv && printf 'a,b\n1.0,0.5\n' >unnamed.csv
expect "predict: the input's columns in another order" 0 "" -- \
    "$T" predict --checkpoint named_run/best.h5 --input swapped.csv --output p_swapped.csv
"$T" predict --checkpoint named_run/best.h5 --input ordered.csv --output p_ordered.csv >/dev/null 2>&1
check "  read by name: the prediction of the same row in the trained order" cmp p_swapped.csv p_ordered.csv
expect "predict: an input without the trained columns" 3 "no column 'x0'" -- \
    "$T" predict --checkpoint named_run/best.h5 --input unnamed.csv --output p_unnamed.csv
printf 'x1,x0,y\n0.5,1.0,1\n' >swapped_rows.csv && "$T" data convert swapped_rows.csv swapped.h5 >/dev/null
expect "predict: an HDF5 input naming its columns in another order" 3 "the columns of /X are x1, x0" -- \
    "$T" predict --checkpoint named_run/best.h5 --input swapped.h5 --output p_swapped_h5.csv
printf 'x1,x0,y\n0.5,1.0,1\n0.2,0.1,0\n1,1,1\n' >swapped_eval.csv
expect "eval: data whose columns differ from the trained ones" 3 "was trained on x0, x1" -- \
    "$T" eval "$MOONS" --set data.generator= --set data.path=swapped_eval.csv --set data.test_fraction=0 \
    --checkpoint named_run/best.h5
# text labels: the model's classes decide the numbers, whatever words a file holds
/usr/bin/python3 - <<'PY'
import random
random.seed(1)
names = ["cat", "dog", "fish"]
for path, n, first in (("animals.csv", 300, 0), ("animals_no_cat.csv", 60, 1)):
    with open(path, "w") as f:
        f.write("x0,x1,y\n")
        for _ in range(n):
            k = random.randrange(first, 3)
            f.write(f"{k + random.gauss(0, 0.3):.3f},{-k + random.gauss(0, 0.3):.3f},{names[k]}\n")
PY
animals=("$MOONS" --set data.generator= --set data.path=animals.csv --set data.test_fraction=0
    --set model.layers=2,16,3 --set model.output_activation=identity --set train.loss=cross_entropy --set train.lr=0.05
    --set train.epochs=20 --set train.batch_size=32)
"$T" train "${animals[@]}" --set output.dir=animals_run >/dev/null 2>&1
expect "eval on a file without one of the classes" 0 "" -- "$T" eval "${animals[@]}" --set data.path=animals_no_cat.csv \
    --set train.eval_train=true --checkpoint animals_run/best.h5
check "  the other classes keep their numbers (accuracy, not 0)" grep -qE "accuracy 0\.9[0-9]" "$W/out.txt"
printf 'x0,x1,y\n1,-1,dog\n2,-2,bird\n' >bird.csv
expect "eval on a file with a class the model does not have" 3 "label 'bird' is not one of the classes (cat, dog, fish)" -- \
    "$T" eval "${animals[@]}" --set data.path=bird.csv --set train.eval_train=true --checkpoint animals_run/best.h5
"$T" train "$MOONS" --set data.generator= --set data.path=named.csv --set data.scale=standard --set output.dir=scaled_run \
    >/dev/null 2>&1
head -61 named.csv >named_part.csv
expect "eval on other rows than training's (another fitted scaling)" 3 "the feature scaling fitted on these training rows differs" -- \
    "$T" eval "$MOONS" --set data.generator= --set data.path=named_part.csv --set data.scale=standard \
    --set train.eval_train=true --checkpoint scaled_run/best.h5
expect "best_metric = val_loss without validation rows" 2 "[output] best_metric = val_loss: the run has no validation rows" -- \
    "${train[@]}" --set output.best_metric=val_loss --set output.dir="$W/r"
expect "best_metric = test_r2 of a classifier" 2 "r2 is a regression metric" -- \
    "${train[@]}" --set output.best_metric=test_r2 --set output.dir="$W/r"
expect "best_metric = none with early stopping" 2 "best_metric = none, but [train] early_stopping follows it" -- \
    "${train[@]}" --set output.best_metric=none --set train.early_stopping=true --set output.dir="$W/r"
expect "--resume with --init-from" 2 "contradict each other" -- \
    "${train[@]}" --resume "$W/prev" --init-from "$W/prev/best.h5"
/usr/bin/python3 - "$W/prev/best.h5" <<'PY'
import sys, h5py, numpy as np
src = h5py.File(sys.argv[1], "r")
def copy(name, obj):  # returns None: h5py's visit stops at the first other value
    if name.startswith("model/") and isinstance(obj, h5py.Dataset):
        f.create_dataset(name, data=obj[()])
with h5py.File("state_dict_extra.h5", "w") as f:  # a PyTorch state_dict with one key too many
    src.visititems(copy)
    f["model/9/weight"] = np.zeros((3, 3), np.float32)
PY
expect "--init-from a state_dict with a tensor the model lacks" 4 "/model/9/weight): refused" -- \
    "${train[@]}" --init-from state_dict_extra.h5 --set output.dir="$W/r"
expect "... with --non-strict: loads the others" 0 "0 tensors of the model not in the file, kept as initialised; 1 in the file not in the model, ignored" -- \
    "${train[@]}" --init-from state_dict_extra.h5 --non-strict --set output.dir="$W/nonstrict"
head -c 3000 "$W/prev/best.h5" >trunc_ckpt.h5
expect "truncated checkpoint (predict)" 4 "trunc_ckpt.h5" -- \
    "$T" predict --checkpoint trunc_ckpt.h5 --input one.csv --output p.csv
expect "random bytes as checkpoint (eval)" 4 "junk.h5" -- "$T" eval "$MOONS" --checkpoint junk.h5
expect "missing checkpoint (--resume)" 4 "no-run" -- "${train[@]}" --resume "$W/no-run"
touch a_file
expect "output directory is a file" 4 "[output] dir = a_file: exists and is not a directory" -- \
    "${train[@]}" --set output.dir=a_file
expect "output directory under a file" 4 "a_file/run" -- "${train[@]}" --set output.dir=a_file/run
check "  earlier run's files unchanged by all of the above" [ "$(sums "$W/prev")" == "$before" ]

# ---- a run directory's files are the trainer's (issue 27, class 1) ---------------------------
# a file under one of the run's names that the trainer did not write, a link, or an input of
# the run: refused before anything is written (status 2), and the file is unchanged
for name in metrics.csv metrics.h5 steps.csv steps.h5 best.h5 ckpt-000000005.h5; do
    mkdir -p "own_$name" && printf 'my notes\n1,2\n' >"own_$name/$name"
    expect "user's own $name in a fresh run dir" 2 "$name exists and is not a file the trainer wrote" -- \
        "${train[@]}" --set output.dir="own_$name" --set output.log_every_steps=2
    check "  $name kept" grep -q "my notes" "own_$name/$name"
    expect "user's own $name with --overwrite" 2 "$name exists and is not a file the trainer wrote" -- \
        "${train[@]}" --set output.dir="own_$name" --set output.log_every_steps=2 --overwrite
    check "  $name kept" grep -q "my notes" "own_$name/$name"
done
echo precious >precious.txt
mkdir -p linked && ln -sf ../precious.txt linked/metrics.csv
expect "metrics.csv a symlink to an outside file" 2 "metrics.csv: is a symbolic link" -- \
    "${train[@]}" --set output.dir=linked
check "  the outside file unchanged" grep -qx precious precious.txt
"${train[@]}" --set output.dir=hard >/dev/null 2>&1 && ln hard/best.h5 best-link.h5
expect "best.h5 with another hard link, --overwrite" 2 "best.h5: the file has 1 other hard link" -- \
    "${train[@]}" --set output.dir=hard --overwrite
check "  the other link's file unchanged" cmp hard/best.h5 best-link.h5
rm best-link.h5
expect "--init-from the run dir's best.h5 with --overwrite" 2 "best.h5 is an input" -- \
    "${train[@]}" --set output.dir=hard --overwrite --init-from hard/best.h5
check "  best.h5 kept" test -f hard/best.h5
mkdir -p data_in_dir && "$T" data gen moons --out data_in_dir/steps.h5 --n 200 >/dev/null
cp data_in_dir/steps.h5 steps_copy.h5
expect "data.path = the run dir's steps.h5" 2 "steps.h5" -- \
    "${csv[@]}" --set data.path=data_in_dir/steps.h5 --set output.dir=data_in_dir --set output.log_every_steps=2
check "  the training data unchanged" cmp data_in_dir/steps.h5 steps_copy.h5
"$T" data gen moons --out gen.csv --n 20 >/dev/null && ln -sf gen.csv gen-link.csv && ln gen.csv gen-hard.csv
expect "data gen --out a symlink" 2 "gen-link.csv: is a symbolic link" -- "$T" data gen moons --out gen-link.csv --n 20
expect "data gen --out a file with another hard link" 2 "other hard link" -- "$T" data gen moons --out gen.csv --n 20
printf 'my,table\n1,2\n' >mine.csv
expect "data gen --out a user's file" 2 "not one trainer data gen wrote" -- "$T" data gen moons --out mine.csv --n 20
check "  the user's file unchanged" grep -q my,table mine.csv
"$T" data gen moons --out pin.csv --n 20 >/dev/null && ln -sf gen.csv pin-link.csv
expect "predict --output a symlink" 2 "pin-link.csv: is a symbolic link" -- \
    "$T" predict --checkpoint hard/best.h5 --input pin.csv --output pin-link.csv
expect "predict --output = its input" 2 "which this command reads" -- \
    "$T" predict --checkpoint hard/best.h5 --input pin.csv --output pin.csv
"$T" data gen moons --out conv.h5 --n 20 >/dev/null && ln -sf conv.h5 conv-link.h5
expect "data convert to a symlink" 2 "conv-link.h5: is a symbolic link" -- "$T" data convert pin.csv conv-link.h5

expect "standard output to a full device (data gen)" 4 "standard output" -- bash -c "'$T' data gen moons --out fullout.csv --n 10 >/dev/full"
expect "standard output to a full device (train)" 4 "standard output" -- \
    bash -c "'$T' train '$MOONS' --set train.epochs=1 --set output.dir='$W/fullout' >/dev/full"

# a second SIGINT while the first one's stop waits for a checkpoint write (paused 30 s): at once, 130
# (no `timeout` in between: it forwards the signals its own way; the pause bounds the run)
TRAINER_TEST_CKPT_PAUSE=1:30 "${train[@]}" --set train.epochs=100000 --set output.dir="$W/interrupted" \
    >/dev/null 2>"$W/err.txt" &
victim=$!
sleep 1.5
kill -INT "$victim"
sleep 1
kill -INT "$victim"
wait "$victim"
status=$?
if [[ $status -eq 130 ]] && grep -q "second interrupt, aborting" "$W/err.txt"; then
    echo "ok   a second SIGINT                          status 130"
else
    echo "FAIL a second SIGINT: status $status (want 130): $(tail -c 300 "$W/err.txt")"
    failures=$((failures + 1))
fi

# ---- the file system says no ------------------------------------------------------------------
if [[ $is_root -eq 1 ]] && mkdir -p small && mount -t tmpfs -o size=1200k tmpfs small 2>/dev/null; then
    mounted+=("$W/small")
    # a 2-256-256-1 Adam checkpoint is 834 KB: the first fits, the second does not
    expect "disk full while checkpointing" 4 "No space left on device; the earlier checkpoints are kept" -- \
        "${train[@]}" --set model.layers=2,256,256,1 --set output.dir="$W/small/run"
    check "  no temporary file left behind" bash -c "! ls '$W'/small/run/*.tmp.* 2>/dev/null"
    check "  the earlier checkpoint is complete and loads" \
        "$T" eval "$MOONS" --set model.layers=2,256,256,1 --checkpoint "$W/small/run/ckpt-000000025.h5"
    umount small && mounted=()
    mount -t tmpfs -o size=16k tmpfs small && mounted+=("$W/small")
    expect "disk full under the metric log" 4 "metrics.h5: cannot" -- \
        "${train[@]}" --set train.epochs=300 --set train.eval_every=1 --set output.checkpoint_every=0 \
        --set output.dir="$W/small/run"
    umount small && mounted=()
    # every other output on a full disk: status 4, the system's reason, no file left (issue 27,
    # class 2: libhdf5 also loses writes silently, which the trainer detects)
    mount -t tmpfs -o size=64k tmpfs small && mounted+=("$W/small")
    "$T" data gen moons --out big.csv --n 100000 >/dev/null
    "${train[@]}" --set output.dir=pred_run >/dev/null 2>&1
    for out in g.csv g.h5; do
        expect "data gen to a full disk ($out)" 4 "small/$out: " -- "$T" data gen moons --out "small/$out" --n 100000
        check "  says why" grep -q "No space left on device" "$W/err.txt"
        check "  no file left" bash -c "! ls '$W'/small/* 2>/dev/null"
    done
    expect "data convert to a full disk" 4 "No space left on device" -- "$T" data convert big.csv small/c.h5
    check "  no file left" bash -c "! ls '$W'/small/* 2>/dev/null"
    for out in p.csv p.h5; do
        expect "predict to a full disk ($out)" 4 "No space left on device" -- \
            "$T" predict --checkpoint pred_run/best.h5 --input big.csv --output "small/$out"
        check "  no file left" bash -c "! ls '$W'/small/* 2>/dev/null"
    done
    umount small && mounted=()
else
    echo "skip disk full (needs root and tmpfs mounts)"
fi
if [[ $is_root -eq 1 ]] && command -v runuser >/dev/null; then
    # copies that `nobody` can reach wherever the checkout is (a clone under /root is not)
    install -m 755 "$T" "$W/trainer_copy" && install -m 644 "$MOONS" "$W/moons.ini"
    as_nobody=(runuser -u nobody -- env)
    if [[ ${LSAN_OPTIONS:-} =~ (^|:)suppressions=([^:]*) ]]; then # a sanitizer build: its suppressions too
        supp=${BASH_REMATCH[2]}
        install -m 644 "$supp" "$W/lsan.supp"
        as_nobody+=("LSAN_OPTIONS=${LSAN_OPTIONS/$supp/$W/lsan.supp}")
    fi
    cp good.h5 secret.h5 && chmod 600 secret.h5
    expect "permission denied on the data" 3 "secret.h5" -- \
        "${as_nobody[@]}" "$W/trainer_copy" train "$W/moons.ini" --set data.generator= --set data.path="$W/secret.h5" \
        --set output.dir=/tmp/trainer-bad-nobody-$$
    mkdir -p locked && chmod 755 locked
    expect "permission denied on the output" 4 "locked/run" -- \
        "${as_nobody[@]}" "$W/trainer_copy" train "$W/moons.ini" --set train.epochs=1 --set output.dir="$W/locked/run"
    rm -rf /tmp/trainer-bad-nobody-$$
else
    echo "skip permission denied (needs root to run as nobody)"
fi

# ---- several ranks: one bad rank stops all, with one message ----------------------------------
expect "config error under mpirun -np 2" 2 "epochs = ten" -- mpirun -np 2 "$T" train bad_type.ini
n_msgs=$(grep -c "epochs = ten" "$W/err.txt")
check "  reported once, not once per rank ($n_msgs)" [ "$n_msgs" -eq 1 ]
expect "data error under mpirun -np 2" 3 "nan.csv:3" -- mpirun -np 2 "$T" train "$MOONS" \
    --set data.generator= --set data.path=nan.csv --set output.dir="$W/r"

if [[ $failures -ne 0 ]]; then
    echo "$failures failed; files kept in $W"
    exit 1
fi
echo "all bad-input checks passed"
