#!/bin/sh
# e2e_report.sh - pictures and the HTML report, looked at as a user would: a short
# real-MNIST run, `loupe viz` and `loupe report` on it, every PNG decoded back
# (libpng: size, not constant), the pages rendered in headless Chromium (no console
# message, every image loaded with a size), and bad input refused with exit 2/3 and
# nothing half-written left behind.
#
#   LOUPE_BIN=bin/loupe LOUPE_BUILD=build sh tests/e2e_report.sh
# Chromium (Debian package `chromium`) is installed when missing and we are root;
# elsewhere the browser checks are skipped with a message saying why.
. "$(dirname "$0")/lib_e2e.sh"
e2e_init e2e_report
DB=$T/runs.db
PNG_INFO=$B/tests/png_info
[ -x "$PNG_INFO" ] || { bad "no $PNG_INFO (make $LOUPE_BUILD/tests/png_info)"; e2e_finish; }

run "$L" train configs/mnist_two_conv.yaml --set data.train_limit=4000 --set data.test_limit=1000 \
    --set train.epochs=2 --db "$DB" --threads 2 --quiet
expect_rc 0 "run 1 (two conv layers) trains on real MNIST"
run "$L" train configs/mnist_dense.yaml --set data.train_limit=4000 --set data.test_limit=1000 \
    --set train.epochs=1 --db "$DB" --threads 2 --quiet
expect_rc 0 "run 2 (dense) trains"

# ---- every PNG decodes: size, and not one flat colour ----
# png_ok FILE MIN_W MIN_H [MIN_COLOURS]: decodes, at least that size, more than
# MIN_COLOURS (default 8) distinct colours: not a flat picture.
png_ok() {
    info=$("$PNG_INFO" "$1" 2>&1) || { bad "$1 decodes" "$info"; return; }
    set -- "$1" "$2" "$3" "${4:-8}" $info
    if [ "$6" -ge "$2" ] && [ "$7" -ge "$3" ] && [ "$9" -gt "$4" ]; then ok "$(basename "$1"): ${6}x$7, $9 colours"
    else bad "$(basename "$1"): ${6}x$7 with $9 colours, expected at least ${2}x$3 and > $4"; fi
}

run "$L" viz filters --run 1 --db "$DB" -o "$T/filters.png"
expect_rc 0 "viz filters"
png_ok "$T/filters.png" 300 200
run "$L" viz maps --run 1 --index 7 --db "$DB" -o "$T/maps.png"
expect_rc 0 "viz maps"
png_ok "$T/maps.png" 600 900
run "$L" viz maps --run 1 --index 7 --layer conv2 --db "$DB" -o "$T/maps-conv2.png"
expect_rc 0 "viz maps --layer conv2"
png_ok "$T/maps-conv2.png" 600 150
run "$L" viz convolve --index 3 -o "$T/convolve.png"
expect_rc 0 "viz convolve"
png_ok "$T/convolve.png" 300 600

run "$L" viz curves 1 2 --db "$DB" -o "$T/curves.svg"
expect_rc 0 "viz curves, through the viz dispatcher"
check "an SVG" grep -q '<svg' "$T/curves.svg"
run "$L" viz --help
expect_out "loupe viz filters" "viz --help lists filters"
expect_out "loupe viz curves" "and curves"

# ---- the report ----
R=$T/report
run "$L" report 1 2 -o "$R/" --db "$DB"
expect_rc 0 "report of runs 1 and 2"
expect_out "wrote $R/index.html (2 runs)" "says where it is"
for f in index.html run-1.html run-2.html .loupe-report; do check "report has $f" test -s "$R/$f"; done
check "and no temporary directory is left" test -z "$(ls -d "$T"/report.tmp-* 2>/dev/null)"
n_png=0
bad_digits=
for f in "$R"/run-*/*.png; do
    [ -f "$f" ] || continue
    n_png=$((n_png + 1))
    case $f in
    *wrong-*) # a misclassified digit, 3x: 84x84 grey, not one flat value
        set -- $("$PNG_INFO" "$f" 2>/dev/null)
        [ "${2:-0}" = 84 ] && [ "${3:-0}" = 84 ] && [ "${5:-0}" -gt 1 ] || bad_digits="$bad_digits $(basename "$f")" ;;
    *) png_ok "$f" 300 300 ;;
    esac
done
check_eq "every misclassified digit decodes: 84x84, not flat" "$bad_digits" ""
check_num "the report's PNGs" "$n_png" '>=' 4
# every image a page names exists
for page in "$R"/*.html; do
    missing=$(sed -n 's/.*<img[^>]* src="\([^"]*\)".*/\1/p' "$page" | while read -r src; do
        [ -s "$R/$src" ] || echo "$src"; done)
    check_eq "every <img> of $(basename "$page") is a file" "$missing" ""
done
check "run-1.html holds the config, escaped" grep -q "name: mnist_two_conv" "$R/run-1.html"
check "run-1.html has the layer table (27,562 parameters)" grep -q "27,562" "$R/run-1.html"
check "index.html links both runs" sh -c "grep -q 'href=\"run-1.html\"' '$R/index.html' && grep -q 'href=\"run-2.html\"' '$R/index.html'"
# The evaluation sections: the matrix's "images" column sums to the test set, the
# worst mistakes are pictures, the curves an SVG.
images=$(sed -n 's/.*<td class="n" style="width:auto">\([0-9]*\)<\/td><\/tr>/\1/p' "$R/run-1.html" | awk '{ s += $1 } END { print s }')
check_eq "run-1.html: confusion matrix rows add up to the 1000 test images" "$images" 1000
wrong=$(sqlite3 "$DB" "SELECT min(24, count(*)) FROM misclassified WHERE run_id = 1 AND split = 'test' AND epoch = 2")
check_eq "run-1.html shows the worst misclassified images as pictures" "$(ls "$R"/run-1/wrong-*.png | wc -l | tr -d ' ')" "$wrong"
check "run-1.html: their labels" grep -q '&rarr; <b>' "$R/run-1.html"
check "run-1.html: per-class precision, recall, F1" grep -q '<th class="n">F1</th>' "$R/run-1.html"
check "learning curves as SVG, per run and for the index" sh -c "grep -q '<svg' '$R/run-1/curves.svg' && grep -q '<svg' '$R/curves.svg' && grep -q 'src=\"curves.svg\"' '$R/index.html'"
check "no network: nothing is fetched from http(s)" sh -c "! grep -qE '(src|href)=\"(https?:)?//' '$R'/*.html"

# A second report into the same directory replaces the first.
run "$L" report 1 -o "$R" --db "$DB"
expect_rc 0 "a new report replaces a previous one"
check "only run 1 now" sh -c "test -s '$R/run-1.html' && ! test -e '$R/run-2.html'"
check "and no old copy is left" test -z "$(ls -d "$T"/report.old-* 2>/dev/null)"
run "$L" report 1 2 -o "$R" --db "$DB"

# ---- bad input: clear message, exit 2/3, nothing left ----
run "$L" report 1 9 -o "$T/r9" --db "$DB"
expect_rc 2 "report of an unknown run"
expect_err "no run 9" "names it"
check "and writes nothing" test -z "$(ls -d "$T"/r9* 2>/dev/null)"
mkdir "$T/mine" && echo "keep me" >"$T/mine/notes.txt"
run "$L" report 1 -o "$T/mine" --db "$DB"
expect_rc 2 "report into a directory that is not a report"
expect_err "is not a loupe report" "says so"
check "its files are untouched" grep -q "keep me" "$T/mine/notes.txt"
check "and no temporary directory is left" test -z "$(ls -d "$T"/mine.* 2>/dev/null)"
run "$L" report 1 -o "$T/no/such/dir/report" --db "$DB"
expect_rc 3 "report under a missing directory"
expect_err "cannot create the report directory" "says what it could not do"
# Data gone half-way (the test set is read per run): the report fails, no half report.
run "$L" report 1 2 -o "$T/r-nodata" --db "$DB" --set data.dir="$T/nowhere"
expect_rc 3 "report whose test images cannot be read"
check "leaves neither the report nor its temporary directory" test -z "$(ls -d "$T"/r-nodata* 2>/dev/null)"
run "$L" viz filters --run 1 --layer relu1 --db "$DB" -o "$T/bad.png"
expect_rc 2 "viz filters of a layer that is not a conv"
expect_err "not a conv layer" "says so, listing the conv layers"
run "$L" viz filters --run 7 --db "$DB" -o "$T/bad.png"
expect_rc 2 "viz filters of an unknown run"
run "$L" viz maps --run 1 --index 1000 --db "$DB" -o "$T/bad.png"
expect_rc 2 "viz maps of an index past the test set"
expect_err "the test set has 1000 images" "gives the range"
run "$L" viz maps --run 1 --index 0 --db "$DB" -o "$T/no/dir/maps.png"
expect_rc 3 "viz maps into a missing directory"
check "no picture left by the failures" test -z "$(ls "$T"/bad.png* "$T"/no 2>/dev/null)"
run "$L" viz filters --run 2 --db "$DB" -o "$T/bad.png"
expect_rc 2 "viz filters of a model without conv layers"

# ---- in a browser ----
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "# installing Debian's chromium for the browser checks"
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium) \
        >"$T/apt.log" 2>&1 || tail -5 "$T/apt.log"
    CHROMIUM=$(command -v chromium || true)
fi
if [ -z "$CHROMIUM" ]; then
    echo "SKIP - browser checks: chromium is not installed and cannot be here (not root, or apt-get failed);"
    echo "       as root: apt-get install chromium"
    e2e_finish
fi

# chrome OUT ERR ARGS...: one headless Chromium, a fresh profile, no network services.
chrome() {
    o=$1 e=$2
    shift 2
    prof=$(mktemp -d "$T/chrome.XXXXXX")
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$prof" \
        --enable-logging=stderr --v=0 --hide-scrollbars "$@" >"$o" 2>"$e"
    rc=$?
    rm -rf "$prof"
    return $rc
}
# Console messages Chromium logged (a page's errors, warnings and logs).
console_of() { grep -E 'CONSOLE' "$1"; }
# A copy of a page with a script that records, once loaded, how many of its images
# loaded with a size: body data-images="LOADED/ALL".
IMG_CHECK='<script>window.addEventListener("load",function(){var m=document.images,k=0;for(var i=0;i<m.length;i++)if(m[i].complete\&\&m[i].naturalWidth>0)k++;document.body.setAttribute("data-images",k+"/"+m.length)})</script>'
images_of() {
    sed "s#</body>#$IMG_CHECK</body>#" "$1" >"$1.check.html"
    chrome "$T/dom" "$T/dom.err" --virtual-time-budget=5000 --dump-dom "file://$1.check.html"
    rm -f "$1.check.html"
    sed -n 's/.*data-images="\([0-9]*\/[0-9]*\)".*/\1/p' "$T/dom" | head -n 1
}

# First, that these checks can fail: a page with a missing image and a console error.
printf '<!DOCTYPE html><html><body><img src="missing.png"><img src="%s"><script>console.error("boom")</script></body></html>' \
    "$R/run-1/filters.png" >"$T/broken.html"
chrome "$T/out" "$T/err" --virtual-time-budget=3000 --dump-dom "file://$T/broken.html"
check "a console error is seen (self-check)" sh -c "grep -q CONSOLE '$T/err' && grep -q boom '$T/err'"
check_eq "a missing image is seen (self-check)" "$(images_of "$T/broken.html")" "1/2"

for page in index.html run-1.html run-2.html; do
    chrome "$T/dom" "$T/err" --virtual-time-budget=5000 --dump-dom "file://$R/$page"
    check "Chromium renders $page" grep -q '</html>' "$T/dom"
    check_eq "$page: no console message" "$(console_of "$T/err")" ""
    n=$(grep -o '<img' "$R/$page" | wc -l | tr -d ' ')
    check_eq "$page: all $n images load with a size" "$(images_of "$R/$page")" "$n/$n"
done
check "run-1.html shows pictures" test "$(grep -o '<img' "$R/run-1.html" | wc -l)" -ge 10

# Screenshots: what a person sees (docs/pictures.md shows one).
for page in index run-1; do
    chrome "$T/out" "$T/err" --window-size=1280,1800 --screenshot="$T/shot-$page.png" "file://$R/$page.html"
    png_ok "$T/shot-$page.png" 1280 1800
done
[ -n "$LOUPE_KEEP_SHOTS" ] && mkdir -p "$LOUPE_KEEP_SHOTS" && cp "$T"/shot-*.png "$R"/run-1/*.png "$LOUPE_KEEP_SHOTS"/
e2e_finish
