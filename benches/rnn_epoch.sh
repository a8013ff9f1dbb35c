#!/usr/bin/env bash
# Training-epoch time of the bio-instantiated RNN: ours vs upstream-style PyTorch (nn.RNN) on the
# same machine, same data and same topology, one run. Defaults: seq_mem (L = 5), H = 220
# (Marmoset x 4), batch 128, 800 training trials, 20 timed epochs.
#   bash benches/rnn_epoch.sh --setup                 # first time: makes .venv-torch (~5 GB)
#   VENV=/path/to/venv bash benches/rnn_epoch.sh      # use an existing PyTorch venv
#   bash benches/rnn_epoch.sh nback_mem               # the other task
#   EPOCHS=10 bash benches/rnn_epoch.sh             # timed epochs per side (default 20)
#   THREADS=1 bash benches/rnn_epoch.sh             # threads for both sides (default: each one's own)
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv-torch}
if [[ "${1:-}" == "--setup" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy
  shift
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "no PyTorch venv at $venv: run with --setup first, or set VENV" >&2
  exit 1
fi
task=${1:-seq_mem}
epochs=${EPOCHS:-20}
threads=${THREADS:-0}
if [[ "$threads" != 0 ]]; then export RAYON_NUM_THREADS=$threads; fi
cargo build --quiet --release -p xtask
out=$(mktemp -d)
./target/release/xtask bench-rnn --task "$task" --epochs "$epochs" --json "$out/rust.json" --export "$out"
"$venv/bin/python" benches/pytorch_rnn.py --data "$out" --task "$task" --epochs "$epochs" --threads "$threads" > "$out/torch.json"
cat "$out/torch.json"
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
rust = json.load(open(f"{d}/rust.json"))
torch = json.loads(open(f"{d}/torch.json").read())
print(f"{rust['task']} H={rust['hidden']} batch={rust['batch']} trials={rust['trials']} density={rust['density']:.4f}: "
      f"rust {rust['median_epoch_ms']:.2f} ms/epoch, pytorch {torch['median_epoch_ms']:.2f} ms/epoch "
      f"(torch {torch['torch']}, {torch['threads']} threads), speed-up {torch['median_epoch_ms'] / rust['median_epoch_ms']:.2f}x")
if rust.get("cpu_ms_per_epoch"):
    print(f"  CPU time per epoch (all threads): rust {rust['cpu_ms_per_epoch']:.1f} ms, pytorch {torch['cpu_ms_per_epoch']:.1f} ms, "
          f"ratio {torch['cpu_ms_per_epoch'] / rust['cpu_ms_per_epoch']:.2f}x")
PY
