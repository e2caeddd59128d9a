#!/bin/sh
# e2e_plugins.sh - op plugins through the CLI: the example plugins are listed with
# their origin, pass gradcheck (and a broken backward fails it), train on MNIST
# from a config's `plugins:` list, reload from the runs database, count in
# `summary`; a plugin built out of the tree with only the two public headers loads
# and trains; every broken plugin is refused with exit 2 and a clear message.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_plugins.sh
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_plugins
DB=$T/plugins.db
CC=${CC:-cc}
for p in leaky_relu avgpool dropout; do
    if [ ! -f "$PLUGINS/$p.so" ]; then
        bad "example plugin $PLUGINS/$p.so is not built (make plugins)"
        e2e_finish
    fi
done
LEAKY=$PLUGINS/leaky_relu.so
AVG=$PLUGINS/avgpool.so
DROP=$PLUGINS/dropout.so

# "The header is enough": ops/loupe_op.h and core/lp_base.h, nothing else.
mkdir -p "$T/inc" "$T/src" "$T/so"
cp ops/loupe_op.h core/lp_base.h "$T/inc/"
plugin_cc() { # OUT.so SRC.c
    "$CC" -std=c11 -O2 -Wall -Wextra -fPIC -shared -I"$T/inc" -o "$1" "$2" 2>"$T/cc.err"
}

# ---- loupe ops: plugins listed with where they came from ----
run "$L" ops --plugin "$LEAKY" --plugin "$AVG" --plugin "$DROP"
expect_rc 0 "ops with three plugins"
for p in leaky_relu avgpool dropout; do
    op=$p
    [ "$p" = dropout ] && op=plugin_dropout # the built-in dropout has the plain name
    check "ops: $op listed, from $PLUGINS/$p.so" \
        awk -v op="$op" -v from="    from $PLUGINS/$p.so; 1 input" \
        '$1 == op { getline nxt; found = (nxt == from) } END { exit !found }' "$T/out"
done
check "ops: built-in conv2d says so" \
    awk '$1 == "conv2d" { getline nxt; found = (nxt ~ /^    from built-in;/) } END { exit !found }' "$T/out"
expect_out "    alpha      float            0.01" "ops: a plugin's attributes are documented (leaky_relu alpha)"
run "$L" ops --plugin "$LEAKY" --plugin "$LEAKY"
expect_rc 0 "the same plugin file twice loads once"

# ---- gradcheck: plugins and built-ins pass, a broken backward fails ----
while IFS='|' read -r args; do
    [ -n "$args" ] || continue
    # shellcheck disable=SC2086
    run "$L" gradcheck $args
    expect_rc 0 "gradcheck $args"
    check "gradcheck $args: PASS line" grep -Eq '^op .* entries checked, .* -> PASS$' "$T/out"
done <<EOF
--op leaky_relu --plugin $LEAKY
--op leaky_relu --plugin $LEAKY --attr alpha=0.2 --shape 2,5,5
--op avgpool --plugin $AVG --attr size=2
--op avgpool --plugin $AVG --attr size=3 --attr stride=2
--op plugin_dropout --plugin $DROP
--op plugin_dropout --plugin $DROP --attr rate=0.9 --seed 7
--op conv2d --attr filters=3 --attr kernel=3
--op conv2d --attr filters=3 --attr kernel=3 --attr padding=same --attr stride=2
--op maxpool --attr size=2
--op dense --attr units=4
EOF

# Broken backwards built out of the tree: gradcheck must see them (exit 1, FAIL).
sed -e 's/\.name = "leaky_relu"/.name = "leaky_broken"/' \
    -e 's/x\[i\] > 0 ? dy\[i\] : alpha \* dy\[i\]/x[i] > 0 ? dy[i] : 2 * alpha * dy[i]/' \
    ops/plugins/leaky_relu.c >"$T/src/leaky_broken.c"
sed -e 's/\.name = "plugin_dropout"/.name = "dropout_nomask"/' -e 's/acc, dy\[i\] \* mask\[i\])/acc, dy[i])/' \
    ops/plugins/dropout.c >"$T/src/dropout_nomask.c"
check "test setup: the two breakages were applied" \
    sh -c "grep -q '2 \* alpha \* dy' '$T/src/leaky_broken.c' && grep -q 'acc, dy\[i\]);' '$T/src/dropout_nomask.c'"
for b in leaky_broken dropout_nomask; do
    if plugin_cc "$T/so/$b.so" "$T/src/$b.c"; then ok "build $b.so"; else bad "build $b.so" "$(cat "$T/cc.err")"; fi
    run "$L" gradcheck --op $b --plugin "$T/so/$b.so"
    expect_rc 1 "gradcheck catches the wrong backward of $b"
    expect_out "-> FAIL" "gradcheck $b: FAIL line"
done

# ---- a config with plugins: trains, reloads, counts ----
# configs/mnist_plugins.yaml names ../build/plugins/*.so; here the build dir may
# differ, so a copy lives in the temp dir with its plugins next to it (relative
# paths resolve against the YAML's directory, not the current one).
mkdir -p "$T/exp/plugins"
cp "$LEAKY" "$AVG" "$DROP" "$T/exp/plugins/"
sed 's|^plugins: .*|plugins: [plugins/leaky_relu.so, plugins/avgpool.so, plugins/dropout.so]|' \
    configs/mnist_plugins.yaml >"$T/exp/mnist_plugins.yaml"
check "test setup: the copied config names plugins/*.so" grep -q '^plugins: \[plugins/leaky_relu.so' "$T/exp/mnist_plugins.yaml"

run "$L" summary "$T/exp/mnist_plugins.yaml"
expect_rc 0 "summary of the plugin config"
expect_out "total                                                      27,562" "summary: 27,562 parameters"
check "summary: plugin layers with their shapes" sh -c \
    "grep -Eq '^  leaky_relu1 +leaky_relu +\[8, 26, 26\] +0$' '$T/out' && grep -Eq '^  avgpool2 +avgpool +\[16, 5, 5\] +0$' '$T/out' && grep -Eq '^  plugin_dropout1 +plugin_dropout +\[64\] +0$' '$T/out'"
run "$L" summary configs/mnist_plugins.yaml --set "plugins=[$LEAKY, $AVG, $DROP]"
expect_rc 0 "summary of the shipped configs/mnist_plugins.yaml (plugins from \$LOUPE_BUILD)"
expect_out "27,562" "shipped config: 27,562 parameters"
if [ "$B" = "$ROOT/build" ]; then
    run "$L" summary configs/mnist_plugins.yaml
    expect_rc 0 "shipped config loads its own ../build/plugins paths"
fi

run "$L" train "$T/exp/mnist_plugins.yaml" --set data.train_limit=3000 --set train.epochs=2 \
    --set data.augment.shift=0 --db "$DB" --threads 2 --json --quiet
expect_rc 0 "train the plugin config on 3000 MNIST images, 2 epochs"
cp "$T/out" "$T/train.json"
check_eq "plugin run completed" "$(json_field status "$T/train.json")" completed
check_num "plugin net learns (test accuracy on 10,000 images)" "$(json_field final_test_acc "$T/train.json")" '>=' 0.85
RUN=$(json_field run_id "$T/train.json")
run "$L" eval --run "$RUN" --db "$DB" --json
expect_rc 0 "eval --run $RUN reloads the plugin net from its checkpoint"
BEST=$(sqlite3 "$DB" "SELECT printf('%.6f', m.value) FROM metrics m JOIN checkpoints c ON c.run_id = m.run_id
    AND c.epoch = m.epoch WHERE m.run_id = $RUN AND c.is_best = 1 AND m.split = 'test' AND m.name = 'acc'")
check_eq "reloaded plugin net: same accuracy as recorded" "$(json_field test_acc "$T/out")" "$BEST"
check_eq "settings record the plugins as written" \
    "$(sqlite3 "$DB" "SELECT value FROM run_params WHERE run_id = $RUN AND key = 'plugins'")" \
    "[plugins/leaky_relu.so, plugins/avgpool.so, plugins/dropout.so]"
mv "$T/exp/plugins" "$T/exp/gone"
run "$L" eval --run "$RUN" --db "$DB"
expect_rc 2 "eval of the run with its plugin gone"
expect_err "$T/exp/mnist_plugins.yaml:" "plugin gone: names the config"
expect_err "plugins/leaky_relu.so: file not found" "plugin gone: names the plugin"
mv "$T/exp/gone" "$T/exp/plugins"

# ---- a plugin built outside the tree with only the headers ----
sed 's/\.name = "leaky_relu"/.name = "leaky_relu2"/' ops/plugins/leaky_relu.c >"$T/src/leaky_relu2.c"
if plugin_cc "$T/so/leaky_relu2.so" "$T/src/leaky_relu2.c"; then
    ok "out-of-tree leaky_relu2.so builds with only loupe_op.h and lp_base.h"
else
    bad "out-of-tree leaky_relu2.so does not build" "$(cat "$T/cc.err")"
fi
run "$L" ops --plugin "$T/so/leaky_relu2.so"
expect_out "from $T/so/leaky_relu2.so; 1 input" "ops lists leaky_relu2 from the temp dir"
run "$L" gradcheck --op leaky_relu2 --plugin "$T/so/leaky_relu2.so"
expect_rc 0 "gradcheck leaky_relu2"
cat >"$T/exp/dense_leaky2.yaml" <<EOF
name: dense_leaky2
model:
  input: [1, 28, 28]
  layers:
    - {op: flatten}
    - {op: dense, name: fc1, units: 64}
    - {op: leaky_relu2, alpha: 0.05}
    - {op: dense, name: fc2, units: 10}
  loss: softmax_cross_entropy
data: {dataset: mnist, dir: $MNIST, train_limit: 3000, test_limit: 2000, normalize: [0.1307, 0.3081]}
train: {epochs: 2, seed: 3, optimizer: {type: sgd, lr: 0.05, momentum: 0.9}}
EOF
run "$L" train "$T/exp/dense_leaky2.yaml" --plugin "$T/so/leaky_relu2.so" --db "$DB" --json --quiet --threads 2
expect_rc 0 "train a dense net with the out-of-tree op (--plugin)"
check_num "out-of-tree op net learns" "$(json_field final_test_acc "$T/out")" '>=' 0.80
run "$L" train "$T/exp/dense_leaky2.yaml" --db "$DB" --quiet
expect_rc 2 "without the plugin the op is unknown"
expect_err "dense_leaky2.yaml:7:7: node 'leaky_relu21': unknown op 'leaky_relu2'" "unknown plugin op: file:line:col"

# ---- broken plugins: exit 2, a clear message, never a crash ----
for f in tests/plugins/bad_*.c; do
    b=$(basename "$f" .c)
    if plugin_cc "$T/so/$b.so" "$f"; then ok "build $b.so"; else bad "build $b.so" "$(cat "$T/cc.err")"; fi
done
cp "$LEAKY" "$T/so/leaky_copy.so"
head -c 4096 configs/mnist_dense.yaml >"$T/so/text.so"
# plugin | text the message must contain
while IFS='|' read -r so msg; do
    [ -n "$so" ] || continue
    path=$T/so/$so
    for cmd in ops train; do
        if [ $cmd = ops ]; then
            run "$L" ops --plugin "$LEAKY" --plugin "$path"
        else
            run "$L" train configs/mnist_dense.yaml --plugin "$LEAKY" --plugin "$path" --db "$T/never.db"
        fi
        expect_rc 2 "$cmd --plugin $so refused"
        expect_err "loupe: plugin error: " "$cmd --plugin $so: a plugin error"
        expect_err "$msg" "$cmd --plugin $so: says why"
    done
done <<EOF
missing.so|plugin $T/so/missing.so: file not found
text.so|plugin $T/so/text.so: cannot load: $T/so/text.so: invalid ELF header
bad_no_entry.so|no function loupe_plugin_init() found: a loupe plugin must export it
bad_abi.so|op ABI version 999, but this loupe has ABI version 2: rebuild the plugin
bad_duplicate.so|op 'relu' is already registered (by built-in)
leaky_copy.so|op 'leaky_relu' is already registered (by $LEAKY)
bad_no_backward.so|op 'no_backward_op' has no backward function
bad_undefined.so|undefined symbol: lp_function_that_does_not_exist
EOF
check "no refused plugin let train create a database" test ! -e "$T/never.db"

# The same refusals from a config's plugins: list carry its file:line:col.
for so in missing.so bad_abi.so bad_undefined.so; do
    printf 'name: bad_plugin\nplugins:\n  - so/%s\nmodel:\n  input: [4]\n  layers: [{op: dense, units: 2}]\n' "$so" \
        >"$T/bad_plugin.yaml"
    run "$L" summary "$T/bad_plugin.yaml"
    expect_rc 2 "config plugins: [$so] refused"
    expect_err "loupe: plugin error: $T/bad_plugin.yaml:3:5: " "config plugins: [$so]: file:line:col of the entry"
done
run "$L" gradcheck --op x --plugin "$T/so/bad_abi.so"
expect_rc 2 "gradcheck --plugin bad_abi.so refused"

e2e_finish
