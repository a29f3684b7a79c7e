#!/usr/bin/env bash
# The CPU benchmark behind docs/performance.md's tables: ViT-B/32-224 image
# embeddings from four contenders, alternating in one run:
#   - the reference: bench/reference.py (ruCLIP's module structure on Debian's
#     python3-torch) at each of its thread settings (OMP/OpenBLAS 1/N, N/1, N/N);
#   - ONNX Runtime (PyPI): the same module, same weights, exported by
#     bench/export_onnx.py and run by bench/peers.py (CPU EP, fp32);
#   - OpenVINO (PyPI): the same ONNX file through bench/peers.py at fp32, bf16
#     (INFERENCE_PRECISION_HINT) and int8 (NNCF post-training quantization);
#   - ours: `ruclip bench` at each precision in PRECISIONS that it accepts.
# Each round measures every contender at batch 8 and 1; the order of the
# contenders rotates from round to round, so slow drift on the machine hits all of them.
#   bash bench/cpu.sh [SECONDS_PER_MEASUREMENT] [ROUNDS]      (default 20 3)
# Environment:
#   RUCLIP=path        the ruclip binary (default build/tools/ruclip; scripts/build.sh)
#   PRECISIONS="..."   ruclip's precisions (default "fp32 bf16 int8 int8-mixed"; one it refuses is skipped)
#   BATCHES="8 1"      batch sizes
#   EMULATE_AVX2=1     cap every contender's instruction set at AVX2 (a Zen 3 / Haswell-class
#                      CPU on a bigger one) where the contender allows it; the output says which
#   ORT_SPINNING="1 0" ONNX Runtime's intra-op spinning settings, each measured (N intra-op
#                      threads, one inter-op thread, sequential: what won in bench/ort-threads.sh)
#   OPENVINO_PRECISIONS="fp32 bf16 int8"   OpenVINO's precisions
#   CONTENDERS="reference ort openvino ruclip"   which of them run (e.g. "openvino ruclip" for
#                      more rounds of that pair in the same time)
# Prints JSON lines (each with the CPU, date and OPENBLAS_CORETYPE), then a
# summary table: min-max over rounds, ratios of medians against the best
# reference setting and against the best ONNX Runtime setting, peak RSS.
# Installs python3-torch and python3-venv (apt), and the peers' pinned PyPI
# packages in bench/.venv, when missing.
set -Eeuo pipefail
trap 'echo "cpu.sh: line $LINENO failed (status $?): $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
seconds="${1:-20}"
rounds="${2:-3}"
threads="$(nproc)"
ruclip="${RUCLIP:-build/tools/ruclip}"
precisions="${PRECISIONS:-fp32 bf16 int8 int8-mixed}"
batches="${BATCHES:-8 1}"
geometry=vit-b32-224
ort_spinning="${ORT_SPINNING:-1 0}"
openvino_precisions="${OPENVINO_PRECISIONS:-fp32 bf16 int8}"
read -r -a contender_names <<<"${CONTENDERS:-reference ort openvino ruclip}"
[ "${#contender_names[@]}" -gt 0 ] || { echo "cpu.sh: CONTENDERS is empty" >&2; exit 2; }
for name in "${contender_names[@]}"; do
  case "$name" in
    reference | ort | openvino | ruclip) ;;
    *) echo "cpu.sh: CONTENDERS: unknown contender '$name' (reference, ort, openvino, ruclip)" >&2; exit 2 ;;
  esac
done

# --- what the contenders need, installed once
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for package in python3-torch python3-venv; do
  installed "$package" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package"
done
# The peers, pinned; pip leaves what is already installed at these versions alone.
peers_pinned="onnxruntime==1.32.0 openvino==2026.4.1 nncf==3.4.0 pillow==13.0.0"
[ -x bench/.venv/bin/python ] || /usr/bin/python3 -m venv bench/.venv
# shellcheck disable=SC2086
bench/.venv/bin/pip install -q --disable-pip-version-check $peers_pinned
onnx="bench/onnx/$geometry.onnx"
if [ ! -f "$onnx" ] || [ bench/export_onnx.py -nt "$onnx" ] || [ bench/reference.py -nt "$onnx" ]; then
  mkdir -p bench/onnx
  /usr/bin/python3 bench/export_onnx.py "$onnx.part" --geometry "$geometry" --reference-out "bench/onnx/$geometry.check.json"
  mv "$onnx.part" "$onnx"
fi
[ -x "$ruclip" ] || { echo "cpu.sh: no ruclip binary at $ruclip (scripts/build.sh, or RUCLIP=...)" >&2; exit 1; }

out="$(mktemp -d)"
# A copy, so that a rebuild of the tree during the run cannot swap or remove it mid-way.
ruclip_from="$ruclip, built $(date -r "$ruclip" -Is)"
cp "$ruclip" "$out/ruclip"
# With the build tree's own shared libraries it loads (its RUNPATH is relative to
# the build tree, so the copy finds them through LD_LIBRARY_PATH).
build_root="$(cd "$(dirname "$ruclip")/.." && pwd)"
ldd "$ruclip" | awk -v root="$build_root/" 'index($3, root) == 1 {print $3}' | xargs -r cp -t "$out/"
ruclip="$out/ruclip"
ruclip_libs=(LD_LIBRARY_PATH="$out")
# The CPU, once: lscpu's model, family/model/stepping and the flags that decide kernels.
lscpu | python3 -c '
import json, os, sys
f = dict(l.split(":", 1) for l in sys.stdin if ":" in l)
f = {k.strip(): v.strip() for k, v in f.items()}
want = ["avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
        "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]
have = set(f.get("Flags", "").split())
c = {"model": f.get("Model name"), "family": f.get("CPU family"), "model_number": f.get("Model"),
     "stepping": f.get("Stepping"), "cpus": os.cpu_count(), "flags": [w for w in want if w in have]}
c["description"] = "%s (family %s model %s stepping %s), %d CPUs, %s" % (
    c["model"], c["family"], c["model_number"], c["stepping"], c["cpus"], " ".join(c["flags"]))
print(json.dumps(c))
' > "$out/cpu.json"

# --- the instruction-set cap
ruclip_env=() ref_env=() ort_env=() ov_env=()  # ort_env stays empty: see below
if [ "${EMULATE_AVX2:-0}" = 1 ]; then
  # LibTorch's own pieces (OpenBLAS, oneDNN, ATen's vector kernels) are capped alike in both.
  ref_env=(OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2)
  ruclip_env=(RUCLIP_MAX_CPU_ISA=avx2 "${ref_env[@]}")
  # MLAS (ONNX Runtime's kernels) chooses from CPUID and XGETBV alone; no variable or
  # session option caps it. Only a CPU (or VM, or kernel with AVX-512 state off) without
  # AVX-512 makes it run its AVX2 kernels.
  if grep -qw avx512f /proc/cpuinfo; then
    ort_cap="NOT capped (MLAS picks kernels from CPUID; nothing caps it): uses this CPU's AVX-512"
  else
    ort_cap="not capped, but this CPU has no AVX-512: AVX2 kernels anyway"
  fi
  # OpenVINO's CPU plugin: its oneDNN honours ONEDNN_MAX_CPU_ISA; its own kernels read
  # OV_CPU_MAX_ISA, which release wheels of 2026.4 ignore (a debug-caps build option).
  ov_env=(ONEDNN_MAX_CPU_ISA=AVX2 OV_CPU_MAX_ISA=AVX2)
  cap_line="AVX2 emulation: reference capped (${ref_env[*]}); ruclip capped (RUCLIP_MAX_CPU_ISA=avx2 and the same); ONNX Runtime $ort_cap; OpenVINO PARTLY capped (its oneDNN: ONEDNN_MAX_CPU_ISA=AVX2; its own kernels: OV_CPU_MAX_ISA, ignored by release wheels)"
else
  cap_line="instruction set: not capped (EMULATE_AVX2=1 caps it)"
fi
# The kernels OpenBLAS picks under the reference's environment (DYNAMIC_ARCH: by CPUID
# unless OPENBLAS_CORETYPE says otherwise); ruclip's LibTorch loads the same library.
openblas_core="$(env "${ref_env[@]}" /usr/bin/python3 -c '
import ctypes, torch
lib = next(l.split()[-1] for l in open("/proc/self/maps") if "libopenblas" in l)
f = ctypes.CDLL(lib).openblas_get_corename
f.restype = ctypes.c_char_p
print(f().decode())' 2>/dev/null || echo unknown)"
cap_line="$cap_line; OpenBLAS kernels: $openblas_core"
export CAP_LINE="$cap_line" OPENBLAS_CORE="$openblas_core"
echo "machine: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["description"])' "$out/cpu.json"), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(date -Is)" >&2
echo "$cap_line" >&2
echo "ruclip: $ruclip_from; raw output: $out" >&2

# annotate CONTENDER ROUND CAPPED [KEY=VALUE...]: one JSON document on stdin (pretty or not)
# becomes one line with the contender's name, the round, the CPU, the date, OPENBLAS_CORETYPE.
annotate() {
  python3 -c '
import json, os, sys, datetime
r = json.load(sys.stdin)
contender, rnd, capped = sys.argv[2:5]
env = dict(a.split("=", 1) for a in sys.argv[5:])
r.setdefault("implementation", contender.split(" ")[0])
if r["implementation"] == "ruclip":
    r["implementation"] = "ruclip bench"
if "cpu" in r:  # what the contender itself reports (ruclip: the features after RUCLIP_MAX_CPU_ISA)
    r["cpu_as_seen_by_contender"] = r.pop("cpu")
r.update({"contender": contender, "round": int(rnd), "cpu": json.load(open(sys.argv[1])),
          "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
          "OPENBLAS_CORETYPE": env.get("OPENBLAS_CORETYPE", os.environ.get("OPENBLAS_CORETYPE")),
          "isa_cap": capped})
if contender.startswith(("reference", "ruclip")):  # they load OpenBLAS; the peers do not
    r["openblas_core"] = os.environ["OPENBLAS_CORE"]
if env:
    r["env"] = env  # what the contender was given: threads, instruction-set caps
print(json.dumps(r))' "$out/cpu.json" "$@" | tee -a "$out/all.jsonl"
}
# isa_cap in each line: off (EMULATE_AVX2 not set), avx2, "NOT capped" (ONNX Runtime) or "partly" (OpenVINO)
cap_of() { if [ "${EMULATE_AVX2:-0}" = 1 ]; then echo "$1"; else echo off; fi; }

# note CONTENDER ROUND CAP BATCH PRECISION MESSAGE: the line of a contender that did not run:
# "refused" where ruclip said why (a precision it does not have), else "error".
note() {
  python3 -c 'import json, sys; b, p, m = sys.argv[1:]; print(json.dumps({"batch": int(b), "precision": p,
    "refused" if m.startswith("ruclip") else "error": m}))' "$4" "$5" "$6" | annotate "$1" "$2" "$3"
}
# measure CONTENDER ROUND CAP BATCH PRECISION [VAR=VALUE...] -- COMMAND...: one annotated line;
# a contender that fails (refuses, crashes, runs out of memory) gets a note and the run goes on.
measure() {
  local contender=$1 round=$2 cap=$3 batch=$4 precision=$5 envs=()
  shift 5
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  if env "${envs[@]}" "$@" > "$out/run.json" 2> "$out/run.err"; then
    annotate "$contender" "$round" "$cap" "${envs[@]}" < "$out/run.json"
  else
    local rc=$?
    failure="$(grep -m 1 '^ruclip' "$out/run.err" || grep -m 1 . "$out/run.err" || echo "exit status $rc")"
    note "$contender" "$round" "$cap" "$batch" "$precision" "$failure"
    return 1
  fi
}

run_reference() {  # batch round
  local setting omp blas
  for setting in "1 $threads" "$threads 1" "$threads $threads"; do
    read -r omp blas <<<"$setting"
    measure "reference $omp/$blas" "$2" "$(cap_of avx2)" "$1" fp32 "${ref_env[@]}" OMP_NUM_THREADS="$omp" \
      OPENBLAS_NUM_THREADS="$blas" -- /usr/bin/python3 bench/reference.py --geometry "$geometry" --batch "$1" \
      --seconds "$seconds" || true
  done
  if [ "$2" = 1 ] && [ "$1" = 8 ]; then  # peak RSS with the text tower too, as ruclip bench holds it
    measure "reference 1/$threads whole model" "$2" "$(cap_of avx2)" "$1" fp32 "${ref_env[@]}" OMP_NUM_THREADS=1 \
      OPENBLAS_NUM_THREADS="$threads" -- /usr/bin/python3 bench/reference.py --geometry "$geometry" --batch "$1" \
      --seconds "$seconds" --whole-model || true
  fi
  if [ "$2" = 1 ]; then  # bf16 fails in the reference (upstream has no such path): once is enough
    measure "reference bf16" "$2" "$(cap_of avx2)" "$1" bf16 "${ref_env[@]}" -- /usr/bin/python3 bench/reference.py \
      --geometry "$geometry" --batch "$1" --seconds 1 --bf16 || true
  fi
}
peer_check() {  # round: --check in round 1, against PyTorch's output of the same input
  [ "$1" = 1 ] && [ -f "bench/onnx/$geometry.check.json" ] && echo --check "bench/onnx/$geometry.check.json"
}
run_ort() {  # batch round
  local spin
  for spin in $ort_spinning; do
    # shellcheck disable=SC2046
    measure "onnxruntime spin $spin" "$2" "$(cap_of "NOT capped")" "$1" fp32 "${ort_env[@]}" -- \
      bench/.venv/bin/python bench/peers.py --engine onnxruntime --model "$onnx" --geometry "$geometry" \
      --batch "$1" --seconds "$seconds" --threads "$threads" --spinning "$spin" $(peer_check "$2") || true
  done
}
run_openvino() {  # batch round
  local precision
  for precision in $openvino_precisions; do
    # shellcheck disable=SC2046
    measure "openvino $precision" "$2" "$(cap_of "partly")" "$1" "$precision" "${ov_env[@]}" -- \
      bench/.venv/bin/python bench/peers.py --engine openvino --model "$onnx" --geometry "$geometry" \
      --precision "$precision" --batch "$1" --seconds "$seconds" --threads "$threads" $(peer_check "$2") || true
  done
}
declare -A refused=()
run_ruclip() {  # batch round
  local precision
  for precision in $precisions; do
    if [ -n "${refused[$precision]:-}" ]; then  # not asked again; said once per batch size
      [ "$2" != 1 ] || note "ruclip $precision" "$2" "$(cap_of avx2)" "$1" "$precision" "${refused[$precision]}"
      continue
    fi
    measure "ruclip $precision" "$2" "$(cap_of avx2)" "$1" "$precision" "${ruclip_env[@]}" "${ruclip_libs[@]}" -- \
      "$ruclip" bench \
      --geometry "$geometry" --batch "$1" --precision "$precision" --threads "$threads" --seconds "$seconds" ||
      refused[$precision]="$failure"
  done
}

contenders=()
for name in "${contender_names[@]}"; do contenders+=("run_$name"); done
count=${#contenders[@]}
for round in $(seq "$rounds"); do
  for batch in $batches; do
    for i in $(seq 0 $((count - 1))); do  # round 1: reference, ORT, OpenVINO, ruclip; round 2: ORT, ..., reference; ...
      "${contenders[$(((i + round - 1) % count))]}" "$batch" "$round"
    done
  done
done

python3 - "$out" <<'PY'
import json, os, statistics, sys
d = sys.argv[1]
runs = [json.loads(l) for l in open(os.path.join(d, "all.jsonl"))]
cpu = json.load(open(os.path.join(d, "cpu.json")))
rounds = max(r["round"] for r in runs)
print(f"\nmachine: {cpu['description']}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}; "
      f"{runs[0]['date'][:10]}; rounds: {rounds}")
print(os.environ["CAP_LINE"])
print("\n| batch | contender | precision | threads | images/s min-max | batch p50 ms | vs best reference | vs best ONNX Runtime | vs OpenVINO, same precision | peak RSS MiB | of the limit |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
med = statistics.median
for batch in sorted({r["batch"] for r in runs}, reverse=True):
    b = [r for r in runs if r["batch"] == batch]
    names = list(dict.fromkeys(r["contender"] for r in b))
    ok = {n: [r for r in b if r["contender"] == n and "images_per_second" in r] for n in names}
    ips = {n: med(r["images_per_second"] for r in rs) for n, rs in ok.items() if rs}
    refs = [n for n in ips if n.startswith("reference") and "whole model" not in n]  # that one: for its RSS
    best = max(refs, key=ips.get) if refs else None
    orts = [n for n in ips if n.startswith("onnxruntime")]
    ort = max(orts, key=ips.get) if orts else None
    openvino = {ok[n][0]["precision"]: n for n in ips if n.startswith("openvino")}
    for n in names:
        rs = ok[n]
        if not rs:
            r = next(r for r in b if r["contender"] == n)
            why = (f"fails: {r['error']}" if "error" in r else f"refused: {r.get('refused')}").replace("|", "\\|")
            print(f"| {batch} | {n} | {r.get('precision', '')} | | {why} | | | | | | |")
            continue
        r0 = rs[0]
        v = [r["images_per_second"] for r in rs]
        label = n + (" (best)" if n == best else "")
        if n.startswith("onnxruntime"):
            label = (f"{r0['implementation']} ({r0['execution_mode']}, inter-op {r0['inter_op_threads']}, "
                     f"spinning {r0['intra_op_spinning']})" + (" (best)" if n == ort else ""))
            if r0.get("isa_cap") == "NOT capped":
                label += ", instruction set NOT capped"
        if n.startswith("openvino"):
            label = f"{r0['implementation']}, runs {r0.get('precision_running', '?')}"
            if r0.get("isa_cap") == "partly":
                label += ", instruction set partly capped"
        if n.startswith("reference"):
            thr = f"{r0['OMP_NUM_THREADS']}/{r0['OPENBLAS_NUM_THREADS']}"
        else:
            thr = str(r0["threads"])
        limit = ""
        if "fraction_of_limit" in r0:
            limit = f"{med(r['fraction_of_limit'] for r in rs):.0%} of {med(r['limit_images_per_second'] for r in rs):.1f}"
        vs_ref = f"{ips[n] / ips[best]:.2f}x" if best else ""
        vs_ort = f"{ips[n] / ips[ort]:.2f}x" if ort else ""
        same = openvino.get({"int8-mixed": "int8"}.get(r0.get("precision"), r0.get("precision", "fp32")))
        vs_ov = f"{ips[n] / ips[same]:.2f}x" if same and not n.startswith("openvino") else ""
        seen = f" ({len(rs)} of {rounds} rounds)" if len(rs) < rounds else ""
        print(f"| {batch} | {label} | {r0.get('precision', 'fp32')} | {thr} | {min(v):.1f}-{max(v):.1f}{seen} | "
              f"{med(r['image_batch_ms']['p50'] for r in rs):.0f} | {vs_ref} | {vs_ort} | {vs_ov} | "
              f"{max(r['peak_rss_mib'] for r in rs):.0f} | {limit} |")
print("\nimages/s: min-max over rounds; ratios: of medians over rounds; batch p50: median over rounds; peak RSS: the largest.")
# Each round measures every contender once, close in time: the ratio within a
# round is what a drift of the machine between rounds leaves alone.
for batch in sorted({r["batch"] for r in runs}, reverse=True):
    b = [r for r in runs if r["batch"] == batch and "images_per_second" in r]
    for n in dict.fromkeys(r["contender"] for r in b if r["contender"].startswith("ruclip")):
        pairs = []
        for rnd in range(1, rounds + 1):
            ours = [r for r in b if r["contender"] == n and r["round"] == rnd]
            if not ours:
                continue
            p = ours[0]["precision"]  # the one it ran in this round (auto's choice may differ between loads)
            peer = "openvino " + {"int8-mixed": "int8"}.get(p, p)
            theirs = [r["images_per_second"] for r in b if r["contender"] == peer and r["round"] == rnd]
            if theirs:
                pairs.append(ours[0]["images_per_second"] / theirs[0])
        if pairs:
            print(f"batch {batch}, {n} / OpenVINO at the precision it ran, each round: "
                  + ", ".join(f"{x:.2f}x" for x in pairs))
gf = [r for r in runs if r["contender"].startswith("ruclip") and "matmul_gflops" in r and r["batch"] == max(x["batch"] for x in runs)]
if gf:
    parts = []
    for p in dict.fromkeys(r["precision"] for r in gf):
        rs = [r for r in gf if r["precision"] == p]
        s = f"{p}: LibTorch {med(r['matmul_gflops'] for r in rs):.0f}"
        one = [r.get("onednn_fp32_matmul_gflops") or 0 for r in rs]
        if max(one):
            s += f", oneDNN fp32 {med(one):.0f}"
        parts.append(s)
    print("matmul GFLOP/s measured in the same run (ruclip bench, median): " + "; ".join(parts))
PY
